//! The command's error type: a chain of messages, outermost first, printed
//! as `error: context: cause`. Any `std::error::Error` converts into it with
//! `?`, and [`Context`] adds what the command was doing.

use std::fmt;

/// The result type of the command's fallible functions.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error message with the context it happened in.
///
/// Deliberately not a `std::error::Error` itself, so that every error type
/// converts into it through the blanket `From`.
pub struct Error {
    /// Outermost context first, the root cause last.
    chain: Vec<String>,
}

impl Error {
    /// An error with just this message.
    pub fn msg(message: impl fmt::Display) -> Error {
        Error {
            chain: vec![message.to_string()],
        }
    }

    /// Prepends what was being done when the error happened.
    pub fn context(mut self, context: impl fmt::Display) -> Error {
        self.chain.insert(0, context.to_string());
        self
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for Error {
    fn from(error: E) -> Error {
        let mut chain = vec![error.to_string()];
        let mut source = error.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            // Many errors already print their source in their own message.
            if !chain.iter().any(|seen| seen.contains(&text)) {
                chain.push(text);
            }
            source = cause.source();
        }
        Error { chain }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.chain.join(": "))
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Adds context to the error of a `Result`.
pub trait Context<T> {
    /// Prepends `context` to the error, if any.
    fn context(self, context: impl fmt::Display) -> Result<T>;
    /// Prepends the context `f` computes, only on error.
    fn with_context<C: fmt::Display>(self, f: impl FnOnce() -> C) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl fmt::Display) -> Result<T> {
        self.map_err(|e| e.into().context(context))
    }

    fn with_context<C: fmt::Display>(self, f: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| e.into().context(f()))
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, context: impl fmt::Display) -> Result<T> {
        self.ok_or_else(|| Error::msg(context))
    }

    fn with_context<C: fmt::Display>(self, f: impl FnOnce() -> C) -> Result<T> {
        self.ok_or_else(|| Error::msg(f()))
    }
}

/// Returns early with an error built like `format!`.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::error::Error::msg(format!($($arg)*)))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_comes_first_and_sources_are_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let err: Result<()> = Err(io).context("opening x");
        assert_eq!(err.unwrap_err().to_string(), "opening x: no such file");
    }
}
