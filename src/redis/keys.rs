//! flowrra's key and channel names, and the glob patterns that find them.

/// The names one prefix gives to records and completion channels:
/// `{prefix}:task:{id}` and `{prefix}:complete:{id}`.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    task: String,
    complete: String,
    task_pattern: String,
    complete_pattern: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        let task = format!("{prefix}:task:");
        let complete = format!("{prefix}:complete:");
        // SCAN and PSUBSCRIBE read their argument as a glob: a `*` in the prefix must only
        // match itself.
        let task_pattern = format!("{}*", escape_glob(&task));
        let complete_pattern = format!("{}*", escape_glob(&complete));
        Keys {
            task,
            complete,
            task_pattern,
            complete_pattern,
        }
    }

    /// The key holding the record of `task_id`.
    pub(crate) fn task(&self, task_id: &str) -> String {
        format!("{}{task_id}", self.task)
    }

    /// The channel a terminal store of `task_id` is announced on.
    pub(crate) fn complete(&self, task_id: &str) -> String {
        format!("{}{task_id}", self.complete)
    }

    /// Matches every record key of this prefix (for `SCAN`).
    pub(crate) fn task_pattern(&self) -> &str {
        &self.task_pattern
    }

    /// Matches every completion channel of this prefix (for `PSUBSCRIBE`).
    pub(crate) fn complete_pattern(&self) -> &str {
        &self.complete_pattern
    }

    /// The task id a record key holds, if the key is one of this prefix.
    pub(crate) fn task_id_of<'a>(&self, key: &'a [u8]) -> Option<&'a str> {
        let id = key.strip_prefix(self.task.as_bytes())?;
        std::str::from_utf8(id).ok()
    }

    /// The task id a completion channel announces, if the channel is one of this prefix.
    pub(crate) fn completed_id<'a>(&self, channel: &'a [u8]) -> Option<&'a str> {
        let id = channel.strip_prefix(self.complete.as_bytes())?;
        std::str::from_utf8(id).ok()
    }
}

/// Escapes the characters Redis glob patterns give a meaning to.
fn escape_glob(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^' | '-') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flowrra_layout() {
        let keys = Keys::new("flowrra");
        assert_eq!(keys.task("t-1"), "flowrra:task:t-1");
        assert_eq!(keys.complete("t-1"), "flowrra:complete:t-1");
        assert_eq!(keys.task_pattern(), "flowrra:task:*");
        assert_eq!(keys.complete_pattern(), "flowrra:complete:*");
        assert_eq!(keys.completed_id(b"flowrra:complete:t-1"), Some("t-1"));
        assert_eq!(keys.completed_id(b"other:complete:t-1"), None);
    }

    #[test]
    fn glob_characters_in_the_prefix_match_only_themselves() {
        let keys = Keys::new("a*b?[c]");
        assert_eq!(keys.task_pattern(), r"a\*b\?\[c\]:task:*");
        assert_eq!(keys.task("x"), "a*b?[c]:task:x");
    }
}
