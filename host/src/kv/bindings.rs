//! The host side of `spin:key-value/key-value@3.0.0` (wasmtime's bindgen over
//! the vendored WIT in `wit/deps/spin-key-value`): an open store is a resource
//! holding its [`SqliteStore`]; `get-keys` streams the keys and then resolves
//! its future.

use super::{KvAccess, SqliteStore, MAX_OPEN};
use std::sync::Arc;
use wasmtime::component::{Accessor, FutureReader, HasData, Linker, Resource, ResourceTable, StreamReader};

mod generated {
    wasmtime::component::bindgen!({
        inline: "package reka:kv; world host { import spin:key-value/key-value@3.0.0; }",
        path: "../wit/deps/spin-key-value",
        imports: { default: trappable },
        with: { "spin:key-value/key-value.store": super::OpenStore },
    });
}

use generated::spin::key_value::key_value::{self as kv, Error};

/// A store a guest has opened.
pub struct OpenStore(Arc<SqliteStore>);

/// The interface's data in a request's store.
pub struct Kv;

impl HasData for Kv {
    type Data<'a> = KvView<'a>;
}

/// A request's resource table and its stores.
pub struct KvView<'a> {
    pub table: &'a mut ResourceTable,
    pub access: &'a mut KvAccess,
}

/// Adds the interface to `linker`; `view` finds a request's [`KvView`].
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> KvView<'_>,
) -> wasmtime::Result<()> {
    kv::add_to_linker::<T, Kv>(linker, view)
}

/// The store behind `handle`.
fn store_of<T>(accessor: &Accessor<T, Kv>, handle: &Resource<OpenStore>) -> wasmtime::Result<Arc<SqliteStore>> {
    accessor.with(|mut access| Ok(access.get().table.get(handle)?.0.clone()))
}

impl kv::Host for KvView<'_> {}

impl kv::HostStore for KvView<'_> {
    fn drop(&mut self, handle: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        self.access.opened = self.access.opened.saturating_sub(1);
        Ok(())
    }
}

impl<U> kv::HostStoreWithStore<U> for Kv {
    async fn open(accessor: &Accessor<U, Self>, label: String) -> wasmtime::Result<Result<Resource<OpenStore>, Error>> {
        accessor.with(|mut access| {
            let view = access.get();
            // Spin's answer for a label the component may not use, configured or not.
            let Some(store) = view.access.find(&label) else {
                return Ok(Err(Error::AccessDenied));
            };
            if view.access.opened >= MAX_OPEN {
                return Ok(Err(Error::StoreTableFull));
            }
            let handle = view.table.push(OpenStore(store))?;
            view.access.opened += 1;
            Ok(Ok(handle))
        })
    }

    async fn get(accessor: &Accessor<U, Self>, handle: Resource<OpenStore>, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        Ok(store_of(accessor, &handle)?.get(&key).map_err(Error::Other))
    }

    async fn set(accessor: &Accessor<U, Self>, handle: Resource<OpenStore>, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), Error>> {
        Ok(store_of(accessor, &handle)?.set(&key, &value).map_err(Error::Other))
    }

    async fn delete(accessor: &Accessor<U, Self>, handle: Resource<OpenStore>, key: String) -> wasmtime::Result<Result<(), Error>> {
        Ok(store_of(accessor, &handle)?.delete(&key).map_err(Error::Other))
    }

    async fn exists(accessor: &Accessor<U, Self>, handle: Resource<OpenStore>, key: String) -> wasmtime::Result<Result<bool, Error>> {
        Ok(store_of(accessor, &handle)?.exists(&key).map_err(Error::Other))
    }

    async fn get_keys(
        accessor: &Accessor<U, Self>,
        handle: Resource<OpenStore>,
    ) -> wasmtime::Result<(StreamReader<String>, FutureReader<Result<(), Error>>)> {
        let (keys, result) = match store_of(accessor, &handle)?.keys() {
            Ok(keys) => (keys, Ok(())),
            Err(e) => (Vec::new(), Err(Error::Other(e))),
        };
        accessor.with(|mut access| {
            let stream = StreamReader::new(&mut access, keys)?;
            let done = FutureReader::new(&mut access, async move { Ok::<_, wasmtime::Error>(result) })?;
            Ok((stream, done))
        })
    }
}
