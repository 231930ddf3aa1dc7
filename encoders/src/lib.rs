//! Media encoders of the multimodal models, native on candle: ConvNeXt V2 (Reka
//! Edge's vision tower), the image encoder
//! (a DINOv2-style ViT read from ONNX initializers) and the audio encoder (a
//! Whisper encoder read from a CTranslate2 model file). Both turn preprocessed
//! media (pixels, log-mel) into hidden states; the host projects those into the
//! decoder's embedding space.

pub mod convnext;
pub mod ct2;
pub mod onnx;
pub mod vit;
pub mod whisper;
