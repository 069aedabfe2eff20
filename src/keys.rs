//! The storage layout, shared with the ioredis store byte for byte:
//! `<prefix>conv:<id>` holds the record JSON, `<prefix>user:<userId>:conversations`
//! is the user's index (sorted set of ids scored by `updatedAt` in ms).

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyLayout {
    prefix: String,
}

impl KeyLayout {
    pub fn new(prefix: impl Into<String>) -> Self {
        KeyLayout { prefix: prefix.into() }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn record(&self, id: &str) -> String {
        format!("{}conv:{id}", self.prefix)
    }

    pub fn user_index(&self, user_id: &str) -> String {
        format!("{}user:{user_id}:conversations", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_ioredis_store() {
        let plain = KeyLayout::default();
        assert_eq!(plain.record("c1"), "conv:c1");
        assert_eq!(plain.user_index("u1"), "user:u1:conversations");
        let prefixed = KeyLayout::new("chat:");
        assert_eq!(prefixed.record("c1"), "chat:conv:c1");
        assert_eq!(prefixed.user_index("u1"), "chat:user:u1:conversations");
    }
}
