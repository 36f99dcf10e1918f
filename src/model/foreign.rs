//! Model formats kafkaml does not load but users reach for first: Keras files (`.keras`, a
//! zip; `.h5`, HDF5) and TensorFlow SavedModel folders. They are recognised before any
//! parsing, so the error says what the path holds and how to convert it, instead of a
//! protobuf decoding error from the GraphDef reader.

use std::path::Path;

use super::ModelError;

/// What to do with a Keras model file.
const KERAS_ADVICE: &str = "load it with keras.models.load_model(path), then write a file \
kafkaml loads with kafkaml.export.freeze_keras(model, \"m.pb\") or \
kafkaml.export.to_onnx(model, \"m.onnx\")";

/// What to do with a SavedModel: Keras 3 cannot load one back as a model, tf2onnx can
/// convert it directly.
const SAVED_MODEL_ADVICE: &str = "write the Keras model it was saved from with \
kafkaml.export.freeze_keras(model, \"m.pb\") or kafkaml.export.to_onnx(model, \"m.onnx\"), \
or convert the folder with `python -m tf2onnx.convert --saved-model DIR --output m.onnx`";

const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
/// An empty zip archive has only its end-of-central-directory record.
const EMPTY_ZIP_MAGIC: &[u8] = b"PK\x05\x06";
const HDF5_MAGIC: &[u8] = b"\x89HDF\r\n\x1a\n";
/// Files every Keras v3 archive holds; their names are stored uncompressed in the zip.
const KERAS_ARCHIVE_MEMBERS: [&[u8]; 3] = [b"config.json", b"metadata.json", b"model.weights.h5"];

fn not_loadable(path: &Path, what: impl Into<String>, advice: &str) -> ModelError {
    ModelError::NotLoadable {
        path: path.to_path_buf(),
        what: what.into(),
        advice: advice.to_string(),
    }
}

/// The error for a directory: a SavedModel, or a folder that may hold a model file.
pub(super) fn directory(path: &Path) -> ModelError {
    if path.join("saved_model.pb").is_file() || path.join("saved_model.pbtxt").is_file() {
        let what = if path.join("keras_metadata.pb").is_file() {
            "a TensorFlow SavedModel folder written by Keras (model.save)"
        } else {
            "a TensorFlow SavedModel folder (it holds saved_model.pb)"
        };
        return not_loadable(path, what, SAVED_MODEL_ADVICE);
    }
    let mut candidates: Vec<String> = std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| {
                    let lower = name.to_ascii_lowercase();
                    lower.ends_with(".pb") || lower.ends_with(".onnx")
                })
                .collect()
        })
        .unwrap_or_default();
    candidates.sort();
    let advice = if candidates.is_empty() {
        "pass the path of a .pb or .onnx file".to_string()
    } else {
        format!(
            "pass the path of a model file in it: {}",
            candidates.join(", ")
        )
    };
    not_loadable(path, "a directory, not a model file", &advice)
}

/// The error for a file in a format kafkaml does not load, judged by its name and first
/// bytes; `None` for anything that may be a GraphDef or ONNX file.
pub(super) fn file(path: &Path, bytes: &[u8]) -> Option<ModelError> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    let is_zip = bytes.starts_with(ZIP_MAGIC) || bytes.starts_with(EMPTY_ZIP_MAGIC);
    let keras_archive = is_zip
        && KERAS_ARCHIVE_MEMBERS
            .iter()
            .any(|member| memchr::memmem::find(bytes, member).is_some());
    if extension.as_deref() == Some("keras") || keras_archive {
        return Some(not_loadable(
            path,
            "a Keras model archive (.keras, a zip of config.json and weights)",
            KERAS_ADVICE,
        ));
    }
    if bytes.starts_with(HDF5_MAGIC) || matches!(extension.as_deref(), Some("h5" | "hdf5")) {
        return Some(not_loadable(
            path,
            "an HDF5 file (a Keras .h5 model or weights)",
            KERAS_ADVICE,
        ));
    }
    if is_zip {
        return Some(not_loadable(
            path,
            "a zip archive, not a model file",
            "unpack it and pass the .pb or .onnx file inside",
        ));
    }
    // A SavedModel's graph file is a SavedModel proto (its first field a schema version),
    // not a GraphDef (whose first field is a node, tag 0x0a).
    let name = path.file_name().and_then(|n| n.to_str());
    if name == Some("saved_model.pb") && !bytes.is_empty() && bytes[0] != 0x0a {
        return Some(not_loadable(
            path,
            "the graph file of a TensorFlow SavedModel folder, not a frozen graph",
            SAVED_MODEL_ADVICE,
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::{LoadOptions, Model};
    use super::*;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let dir =
                std::env::temp_dir().join(format!("kafkaml-foreign-{}-{tag}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            std::fs::remove_dir_all(&self.0).ok();
        }
    }

    fn load_error(path: &Path) -> String {
        match Model::load(path, &LoadOptions::default()) {
            Err(error @ ModelError::NotLoadable { .. }) => error.to_string(),
            other => panic!("expected NotLoadable for {}, got {other:?}", path.display()),
        }
    }

    #[test]
    fn keras_files_are_recognised_by_extension_and_content() {
        let dir = TempDir::new("keras");
        let archive = [ZIP_MAGIC, b"\x14\x00\x00\x00metadata.json{}".as_slice()].concat();
        for (name, bytes) in [
            ("m.keras", b"not even a zip".to_vec()),
            ("m.zip", archive.clone()),
            ("model", archive),
        ] {
            let path = dir.0.join(name);
            std::fs::write(&path, bytes).unwrap();
            let error = load_error(&path);
            assert!(error.contains("Keras model archive"), "{error}");
            assert!(
                error.contains("kafkaml.export.freeze_keras(model, \"m.pb\")"),
                "{error}"
            );
            assert!(error.contains(name), "{error}");
        }
        for name in ["weights.h5", "model.pb"] {
            let path = dir.0.join(name);
            std::fs::write(&path, [HDF5_MAGIC, &[0u8; 64]].concat()).unwrap();
            let error = load_error(&path);
            assert!(error.contains("an HDF5 file"), "{error}");
            assert!(error.contains("kafkaml.export.to_onnx"), "{error}");
        }
        let other_zip = dir.0.join("data.zip");
        std::fs::write(&other_zip, [ZIP_MAGIC, b"readme.txt".as_slice()].concat()).unwrap();
        assert!(load_error(&other_zip).contains("a zip archive, not a model file"));
    }

    #[test]
    fn saved_model_folders_and_their_graph_file_are_recognised() {
        let dir = TempDir::new("saved");
        // schema version 1 (field 1, varint), as TensorFlow writes it
        std::fs::write(dir.0.join("saved_model.pb"), b"\x08\x01\x12\x00").unwrap();
        std::fs::create_dir_all(dir.0.join("variables")).unwrap();
        let error = load_error(&dir.0);
        assert!(error.contains("a TensorFlow SavedModel folder"), "{error}");
        assert!(error.contains("tf2onnx.convert --saved-model"), "{error}");
        let error = load_error(&dir.0.join("saved_model.pb"));
        assert!(
            error.contains("the graph file of a TensorFlow SavedModel"),
            "{error}"
        );
    }

    #[test]
    fn other_directories_name_the_model_files_inside() {
        let dir = TempDir::new("plain");
        std::fs::write(dir.0.join("b.onnx"), b"").unwrap();
        std::fs::write(dir.0.join("a.pb"), b"").unwrap();
        std::fs::write(dir.0.join("notes.txt"), b"").unwrap();
        let error = load_error(&dir.0);
        assert!(
            error.contains("is a directory, not a model file;")
                && error.ends_with("pass the path of a model file in it: a.pb, b.onnx"),
            "{error}"
        );
    }

    #[test]
    fn graphdefs_and_onnx_files_are_left_to_their_loaders() {
        assert!(file(Path::new("m.pb"), b"\x0a\x05input").is_none());
        assert!(file(Path::new("m.onnx"), b"\x08\x07\x12\x07pytorch").is_none());
        assert!(file(Path::new("saved_model.pb"), b"\x0a\x05input").is_none());
        assert!(file(Path::new("empty.pb"), b"").is_none());
    }
}
