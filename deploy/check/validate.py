#!/usr/bin/env python3
"""Offline validation of everything under deploy/ (run by scripts/deploy-check.sh
inside its venv: kubernetes-validate, jsonschema, pyyaml, all pinned).

1. Renders each kustomization (deploy/k8s and its overlays) as kustomize would
   for the features they use (resources, namespace, images, configMapGenerator
   without hash suffix, JSON 6902 patches; anything else is an error), then
   validates every object against the Kubernetes OpenAPI schemas that
   kubernetes-validate ships, strictly (unknown fields fail), for the oldest
   and newest Kubernetes version each kustomization supports.
2. Validates the files no kustomization applies (secret.example.yaml,
   hpa-requests-waiting.yaml) the same way.
3. Validates the SpinApp against spin-operator's CRD openAPIV3Schema with
   jsonschema (unknown fields fail, as the API server would prune them), and
   the CRD itself as a Kubernetes object; checks the CRD's sha256 against
   crd/ORIGIN.md.
4. Cross-checks what schemas cannot see: selectors match pod labels, named
   ports and volumes exist, referenced ConfigMaps/PVCs/Secrets and keys agree,
   probes hit /health (exempt from the API key), pods meet the "restricted"
   Pod Security Standard's container settings, the runtime configs parse,
   agree, and name only files the models image holds (embedding models
   included), aliases collide with no model, every model the example SpinApp's
   ai_models name is served, the SpinApp's url is the Service, the
   models-fetch Job's pins are the ones the Rust fetchers use and it puts the
   embedding model where the runtime configs look for it.

Prints one line per check; exits 1 on any failure.
"""

import copy
import hashlib
import importlib.metadata
import importlib.util
import json
import re
import sys
import tomllib
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"

# kustomization -> Kubernetes versions whose schemas it must pass
KUSTOMIZATIONS = {
    K8S: ["1.30.0", "1.37.0"],
    K8S / "models-pvc": ["1.30.0", "1.37.0"],
    # image volumes: beta and on by default from 1.35 (the API field exists from 1.31)
    K8S / "models-image-volume": ["1.35.0", "1.37.0"],
}
LOOSE = {K8S / "secret.example.yaml": ["1.30.0", "1.37.0"], K8S / "hpa-requests-waiting.yaml": ["1.30.0", "1.37.0"]}

failures = []


def check(name, ok, detail=""):
    print(f"  {'ok  ' if ok else 'FAIL'} {name}{(': ' + detail) if detail and not ok else ''}", flush=True)
    if not ok:
        failures.append(f"{name}: {detail}")
    return ok


def load_yaml(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


# ---------------------------------------------------------------- mini kustomize

KNOWN_KEYS = {"apiVersion", "kind", "namespace", "resources", "images", "configMapGenerator", "generatorOptions", "patches"}


def pointer(path):
    return [p.replace("~1", "/").replace("~0", "~") for p in path.lstrip("/").split("/")]


def json_patch(doc, ops):
    for op in ops:
        *parents, last = pointer(op["path"])
        target = doc
        for p in parents:
            target = target[int(p)] if isinstance(target, list) else target[p]
        if op["op"] == "add":
            if isinstance(target, list):
                target.insert(len(target) if last == "-" else int(last), copy.deepcopy(op["value"]))
            else:
                target[last] = copy.deepcopy(op["value"])
        elif op["op"] == "replace":
            if isinstance(target, list):
                target[int(last)] = copy.deepcopy(op["value"])
            else:
                if last not in target:
                    raise KeyError(f"replace: {op['path']} does not exist")
                target[last] = copy.deepcopy(op["value"])
        elif op["op"] == "remove":
            del target[int(last) if isinstance(target, list) else last]
        else:
            raise ValueError(f"unsupported patch op {op['op']}")


def set_image(obj, images):
    spec = obj.get("spec", {})
    pod = spec.get("template", {}).get("spec") if obj["kind"] in ("Deployment", "Job") else None
    if not pod:
        return
    for c in pod.get("containers", []) + pod.get("initContainers", []):
        name, _, tag = c["image"].rpartition(":") if ":" in c["image"].split("/")[-1] else (c["image"], "", "")
        for im in images:
            if im["name"] == name:
                c["image"] = f"{im.get('newName', name)}:{im.get('newTag', tag)}"


def render(kdir):
    """The objects `kubectl apply -k kdir` would send."""
    k = yaml.safe_load((kdir / "kustomization.yaml").read_text())
    unknown = set(k) - KNOWN_KEYS
    if unknown:
        raise ValueError(f"{kdir}/kustomization.yaml uses {sorted(unknown)}, which deploy/check/validate.py does not render")
    objs = []
    for r in k.get("resources", []):
        p = (kdir / r).resolve()
        objs += render(p) if p.is_dir() else load_yaml(p)
    for gen in k.get("configMapGenerator", []):
        if not k.get("generatorOptions", {}).get("disableNameSuffixHash"):
            raise ValueError("configMapGenerator without disableNameSuffixHash is not rendered here")
        data = {Path(f).name: (kdir / f).read_text() for f in gen["files"]}
        objs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"]}, "data": data})
    for patch in k.get("patches", []):
        t = patch["target"]
        hits = [o for o in objs if o["kind"] == t["kind"] and o["metadata"]["name"] == t["name"]]
        if len(hits) != 1:
            raise ValueError(f"patch target {t} matches {len(hits)} objects")
        json_patch(hits[0], yaml.safe_load((kdir / patch["path"]).read_text()))
    for o in objs:
        set_image(o, k.get("images", []))
        if k.get("namespace") and o["kind"] != "Namespace":
            o["metadata"]["namespace"] = k["namespace"]
    return objs


# ---------------------------------------------------------------- schemas


def k8s_validate(label, obj, versions):
    errors = []
    for v in versions:
        try:
            kubernetes_validate.validate(obj, v, strict=True)
        except kubernetes_validate.ValidationError as e:
            errors.append(f"k8s {v}: {e.message} at {'.'.join(map(str, e.path))}")
        except Exception as e:  # a version or kind the package has no schema for
            errors.append(f"k8s {v}: {e!r}")
    check(f"{label} {obj['kind']}/{obj['metadata']['name']}: schema of k8s {' and '.join(versions)} (strict)", not errors, "; ".join(errors))


def strict_schema(s):
    """An openAPIV3Schema as JSON Schema where unknown fields fail, as the API
    server prunes (drops) them from a structural schema's objects."""
    if isinstance(s, dict):
        s = {k: strict_schema(v) for k, v in s.items()}
        if (s.get("type") == "object" and "properties" in s and "additionalProperties" not in s
                and not s.get("x-kubernetes-preserve-unknown-fields")):
            s["additionalProperties"] = False
        return s
    if isinstance(s, list):
        return [strict_schema(v) for v in s]
    return s


# ---------------------------------------------------------------- cross checks


def served(rc):
    """(paths under /models, {name: kind}) of a parsed runtime config."""
    paths = {m["path"] for m in rc.get("models", {}).values()}
    paths |= {m["mmproj"] for m in rc.get("models", {}).values() if m.get("mmproj")}
    paths |= {m["path"] for m in rc.get("embedding_models", {}).values()}
    names = {n: "model" for n in rc.get("models", {})}
    for n, m in rc.get("models", {}).items():
        names.update({a: f"alias of {n}" for a in m.get("aliases", [])})
    names.update({n: "embedding model" for n in rc.get("embedding_models", {})})
    return paths, names


def differences(a, b):
    """What two served() results disagree on, in words."""
    (pa, na), (pb, nb) = a, b
    items = lambda d: {f"{k} ({v})" for k, v in d.items()}
    return "; ".join(f"only in {w}: {sorted(x)}" for w, x in (
        ("this one", (pa - pb) | (items(na) - items(nb))), ("the image's", (pb - pa) | (items(nb) - items(na)))) if x)


def check_names(label, rc):
    """Aliases and embedding models must not shadow each other or a model."""
    all_names = list(rc.get("models", {})) + [a for m in rc.get("models", {}).values() for a in m.get("aliases", [])]
    all_names += list(rc.get("embedding_models", {}))
    dup = sorted({n for n in all_names if all_names.count(n) > 1})
    check(f"{label}: model names, aliases and embedding model names are distinct", not dup, f"repeated: {dup}")


def pod_spec(o):
    return o["spec"]["template"]["spec"] if o["kind"] in ("Deployment", "Job") else None


def cross_checks(label, objs, image_models, image_rc):
    by = {(o["kind"], o["metadata"]["name"]): o for o in objs}
    for o in objs:
        ps = pod_spec(o)
        if not ps:
            continue
        name = f"{label} {o['kind']}/{o['metadata']['name']}"
        labels = o["spec"]["template"]["metadata"].get("labels", {})
        if o["kind"] == "Deployment":
            sel = o["spec"]["selector"]["matchLabels"]
            check(f"{name}: selector matches the pod labels", all(labels.get(k) == v for k, v in sel.items()))
        psc = ps.get("securityContext", {})
        vols = {v["name"]: v for v in ps.get("volumes", [])}
        for c in ps.get("containers", []) + ps.get("initContainers", []):
            sc = c.get("securityContext", {})
            cn = f"{name} container {c['name']}"
            check(f"{cn}: restricted pod security (non-root, no escalation, drop ALL, RuntimeDefault seccomp)",
                  (sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True
                   and sc.get("allowPrivilegeEscalation") is False
                   and sc.get("capabilities", {}).get("drop") == ["ALL"]
                   and sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type") == "RuntimeDefault"))
            check(f"{cn}: read-only root filesystem", sc.get("readOnlyRootFilesystem") is True)
            missing = [m["name"] for m in c.get("volumeMounts", []) if m["name"] not in vols]
            check(f"{cn}: every volumeMount names a volume", not missing, f"missing {missing}")
            ports = {p["name"] for p in c.get("ports", [])}
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                if probe in c:
                    g = c[probe]["httpGet"]
                    check(f"{cn}: {probe} GET /health on a declared port", g["path"] == "/health" and g["port"] in ports)
            if "reka-host" in c["image"]:
                args = c.get("args", [])
                check(f"{cn}: /health stays exempt from the API key", not any(a.startswith("--api-key-exempt") for a in args))
                env = {e["name"]: e for e in c.get("env", [])}
                ref = env.get("REKA_API_KEY", {}).get("valueFrom", {}).get("secretKeyRef", {})
                check(f"{cn}: REKA_API_KEY from Secret reka-api-key/api-key", ref.get("name") == "reka-api-key" and ref.get("key") == "api-key")
                rc_arg = [a.split("=", 1)[1] for a in args if a.startswith("--runtime-config=")]
                check(f"{cn}: --runtime-config is the mounted ConfigMap's file", rc_arg == ["/etc/reka/runtime-config.toml"]
                      and any(m["mountPath"] == "/etc/reka" for m in c.get("volumeMounts", [])))
        for v in vols.values():
            if "configMap" in v:
                check(f"{name}: ConfigMap {v['configMap']['name']} is in the same render", ("ConfigMap", v["configMap"]["name"]) in by)
            if "persistentVolumeClaim" in v:
                check(f"{name}: PVC {v['persistentVolumeClaim']['claimName']} is in the same render",
                      ("PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"]) in by)
        if o["kind"] == "Deployment":
            for s in (x for x in objs if x["kind"] == "Service"):
                sel = s["spec"]["selector"]
                check(f"{label} Service/{s['metadata']['name']}: selects the Deployment's pods", all(labels.get(k) == v for k, v in sel.items()))
                cports = {p["name"] for c in ps["containers"] for p in c.get("ports", [])}
                check(f"{label} Service/{s['metadata']['name']}: targetPort is a named container port", all(p["targetPort"] in cports for p in s["spec"]["ports"]))
            for h in (x for x in objs if x["kind"] == "HorizontalPodAutoscaler"):
                t = h["spec"]["scaleTargetRef"]
                check(f"{label} HPA/{h['metadata']['name']}: targets this Deployment", t["kind"] == "Deployment" and t["name"] == o["metadata"]["name"])
            c0 = ps["containers"][0]
            check(f"{label} Deployment: CPU and memory requests set (HPA on CPU needs them)",
                  {"cpu", "memory"} <= set(c0.get("resources", {}).get("requests", {})))
    cm = by.get(("ConfigMap", "reka-runtime-config"))
    if check(f"{label} ConfigMap/reka-runtime-config is present", cm is not None):
        try:
            rc = tomllib.loads(cm["data"]["runtime-config.toml"])
            paths, names = served(rc)
            check(f"{label} runtime-config.toml parses; serves {', '.join(f'{n} ({k})' for n, k in sorted(names.items()))}", True)
            check(f"{label} runtime-config.toml: every path (models and embedding models) is one the -models image holds", paths <= image_models,
                  f"{sorted(paths - image_models)} not in deploy/image/runtime-config.toml")
            check(f"{label} runtime-config.toml: default_model is listed", rc.get("default_model", next(iter(rc["models"]))) in rc["models"])
            check_names(f"{label} runtime-config.toml", rc)
            check(f"{label} runtime-config.toml serves what the image's own config serves (same names, same paths)",
                  served(rc) == served(image_rc), differences(served(rc), served(image_rc)))
        except Exception as e:
            check(f"{label} runtime-config.toml parses", False, repr(e))


def main():
    v = importlib.metadata.version
    print(f"deploy-check: kubernetes-validate {v('kubernetes-validate')}, jsonschema {v('jsonschema')}, pyyaml {v('pyyaml')}")
    image_rc = tomllib.loads((DEPLOY / "image" / "runtime-config.toml").read_text())
    image_models, image_names = served(image_rc)
    print("image runtime config:")
    check(f"deploy/image/runtime-config.toml parses; serves {', '.join(f'{n} ({k})' for n, k in sorted(image_names.items()))}", True)
    check("deploy/image/runtime-config.toml: every model and embedding model is under /models", all(p.startswith("/models/") for p in image_models))
    check_names("deploy/image/runtime-config.toml", image_rc)
    check("deploy/image/runtime-config.toml: an embedding model is listed (Spin's generate_embeddings, /embed)",
          bool(image_rc.get("embedding_models")))

    rendered = {}
    for kdir, versions in KUSTOMIZATIONS.items():
        label = str(kdir.relative_to(ROOT))
        print(f"{label} (kustomize render, k8s {' and '.join(versions)}):")
        try:
            objs = render(kdir)
        except Exception as e:
            check(f"{label}: renders", False, repr(e))
            continue
        check(f"{label}: renders {len(objs)} objects: {', '.join(o['kind'] + '/' + o['metadata']['name'] for o in objs)}", True)
        rendered[kdir] = objs
        for o in objs:
            k8s_validate(label, o, versions)
        cross_checks(label, objs, image_models, image_rc)

    print("files no kustomization applies:")
    for f, versions in LOOSE.items():
        for o in load_yaml(f):
            k8s_validate(str(f.relative_to(ROOT)), o, versions)
    secret = load_yaml(K8S / "secret.example.yaml")[0]
    check("secret.example.yaml: Secret reka-api-key with key api-key", secret["metadata"]["name"] == "reka-api-key" and "api-key" in secret["stringData"])

    print("SpinKube:")
    crd_path = DEPLOY / "spinkube" / "crd" / "core.spinkube.dev_spinapps.yaml"
    origin = (DEPLOY / "spinkube" / "crd" / "ORIGIN.md").read_text()
    digest = hashlib.sha256(crd_path.read_bytes()).hexdigest()
    check(f"CRD sha256 {digest[:16]}… matches crd/ORIGIN.md", digest in origin)
    crd = load_yaml(crd_path)[0]
    k8s_validate("spinkube/crd", crd, ["1.30.0"])
    version = next(v for v in crd["spec"]["versions"] if v.get("served") and v.get("storage"))
    schema = strict_schema(version["schema"]["openAPIV3Schema"])
    jsonschema.Draft7Validator.check_schema(schema)
    base = rendered.get(K8S, [])
    svc = next((o for o in base if o["kind"] == "Service"), None)
    cm = next((o for o in base if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "reka-runtime-config"), None)
    cm_names = served(tomllib.loads(cm["data"]["runtime-config.toml"]))[1] if cm else {}
    app_manifest = ROOT / "examples" / "spin-llm" / "spin.toml"
    ai_models = sorted({m for c in tomllib.loads(app_manifest.read_text()).get("component", {}).values() for m in c.get("ai_models", [])})
    for app in load_yaml(DEPLOY / "spinkube" / "spinapp.yaml"):
        name = f"SpinApp/{app['metadata']['name']}"
        check(f"{name}: apiVersion is {crd['spec']['group']}/{version['name']}", app["apiVersion"] == f"{crd['spec']['group']}/{version['name']}" and app["kind"] == crd["spec"]["names"]["kind"])
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(app), key=lambda e: list(e.path))
        check(f"{name}: valid against the CRD's openAPIV3Schema (unknown fields fail)", not errors,
              "; ".join(f"{e.message} at {'.'.join(map(str, e.path))}" for e in errors[:5]))
        llm = app["spec"].get("runtimeConfig", {}).get("llmCompute", {})
        opts = {o["name"]: o for o in llm.get("options", [])}
        check(f"{name}: llmCompute type remote_http with url and auth_token (Spin's RemoteHttpCompute fields)",
              llm.get("type") == "remote_http" and set(opts) >= {"url", "auth_token"} and set(opts) <= {"url", "auth_token", "api_type"})
        ref = opts.get("auth_token", {}).get("valueFrom", {}).get("secretKeyRef", {})
        check(f"{name}: auth_token is the reka-host API key Secret, in reka-host's namespace",
              ref.get("name") == "reka-api-key" and ref.get("key") == "api-key"
              and app["metadata"].get("namespace") == (svc or {}).get("metadata", {}).get("namespace"))
        # Spin checks ai_models itself, then sends the name as it is to /infer
        # or /embed: reka-host must serve each under exactly that name.
        unserved = [m for m in ai_models if m not in cm_names]
        check(f"{name}: the app's ai_models {ai_models} ({app_manifest.relative_to(ROOT)}) are served by the ConfigMap's runtime config"
              f" ({', '.join(f'{m}: {cm_names[m]}' for m in ai_models if m in cm_names)})", bool(ai_models) and not unserved,
              f"not served: {unserved}")
        if svc:
            want = f"http://{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc.cluster.local"
            port = svc["spec"]["ports"][0]["port"]
            url = opts.get("url", {}).get("value", "")
            ok_urls = {f"{want}:{port}"} | ({want} if port == 80 else set())
            check(f"{name}: url {url} is the Service's root", url.rstrip("/") in ok_urls)

    print("plain Spin runtime config:")
    spin_rc = tomllib.loads((DEPLOY / "spin" / "runtime-config.toml").read_text())
    llm = spin_rc.get("llm_compute", {})
    check("deploy/spin/runtime-config.toml: [llm_compute] type remote_http, url, auth_token",
          llm.get("type") == "remote_http" and {"url", "auth_token"} <= set(llm) and re.match(r"^https?://[^/]+/?$", llm["url"]) is not None)

    print("models-fetch Job pins:")
    spec = importlib.util.spec_from_file_location("fetch_models", K8S / "models-pvc" / "fetch-models.py")
    fm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fm)
    rust = "".join(p.read_text() for d in ("host/src", "crates") for p in (ROOT / d).rglob("*.rs"))
    pins = {sha for *_, sha in fm.FILES}
    missing = sorted(p for p in pins if p not in rust)
    check(f"fetch-models.py: the {len(pins)} model-file pins are reka-host fetch's", not missing, f"not in host/src or crates: {missing}")
    epins = {fm.EMBEDDER["wheel_sha256"], *fm.EMBEDDER["files"].values()}
    if (ROOT / "crates" / "reka-embed").is_dir():
        missing = sorted(p for p in epins if p not in rust)
        check(f"fetch-models.py: the {len(epins)} embedder pins are crates/reka-embed's", not missing, f"not in crates: {missing}")
    else:
        print(f"  skip the {len(epins)} embedder pins: no crates/reka-embed in this tree")
    edirs = sorted(m["path"] for m in image_rc.get("embedding_models", {}).values())
    check(f"fetch-models.py puts the embedding model where the runtime configs look ({', '.join(edirs)})",
          edirs == [f"/models/{fm.EMBEDDER['dir']}"], f"the Job writes /models/{fm.EMBEDDER['dir']}")
    check("models-pvc/smollm2-omni.json equals presets/smollm2-omni.json",
          (K8S / "models-pvc" / "smollm2-omni.json").read_bytes() == (ROOT / "presets" / "smollm2-omni.json").read_bytes())

    if failures:
        print(f"deploy-check: {len(failures)} failure(s):")
        for f in failures:
            print(f"  - {f}")
        sys.exit(1)


if __name__ == "__main__":
    main()
