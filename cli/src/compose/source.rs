use super::error::{ComposeError, Location};
use super::locate::locate;
use super::node::KeyPath;

/// The text being loaded and its name, to turn key paths into positioned errors.
pub struct Source<'a> {
    pub name: &'a str,
    pub text: &'a str,
}

impl Source<'_> {
    pub fn position(&self, path: &KeyPath, key: bool) -> Option<Location> {
        locate(self.text, path, key)
    }

    /// An invalid value at `path`, pointing at the value.
    pub fn invalid(&self, path: &KeyPath, message: impl Into<String>) -> ComposeError {
        ComposeError::Invalid {
            file: self.name.to_string(),
            key_path: path.to_string(),
            location: self.position(path, false),
            message: message.into(),
        }
    }

    /// A problem with the key `key` of the mapping at `path`, pointing at the key.
    pub fn invalid_key(
        &self,
        path: &KeyPath,
        key: &str,
        message: impl Into<String>,
    ) -> ComposeError {
        ComposeError::Invalid {
            file: self.name.to_string(),
            key_path: path.to_string(),
            location: self.position(&path.key(key), true),
            message: message.into(),
        }
    }
}
