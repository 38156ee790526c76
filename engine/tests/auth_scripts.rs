//! Golden-file tests of the auth store: each `tests/auth/scripts/*.txt` is a story of auth
//! changes and permission checks, one per line, and its snapshot holds every answer.
//!
//! Script format (`#` starts a comment line; KEYS is `k` for one key, `a..c` for `[a, c)`,
//! `a..` for every key >= `a`; `""` is an empty name):
//!
//! ```text
//! user-add NAME [HASH]           # no HASH: a no-password user
//! user-del NAME | user-get NAME | user-list | user-passwd NAME HASH
//! user-grant USER ROLE | user-revoke USER ROLE
//! role-add NAME | role-del NAME | role-get NAME | role-list
//! grant ROLE read|write|readwrite KEYS | revoke ROLE KEYS
//! enable | disable | status
//! check USER[@REV] read|write KEYS ...   # REV defaults to the current revision; USER `-` is none
//! admin USER                              # the root-role check
//! ```

use engine::auth::{
    Access, AuthInfo, AuthRequest, AuthResponse, AuthStore, KeyRange, Permission, PermissionKind,
};

/// KEYS as a range.
fn keys_of(token: &str) -> KeyRange {
    match token.split_once("..") {
        Some((key, "")) => KeyRange::range(key.as_bytes(), &[0]),
        Some((key, end)) => KeyRange::range(key.as_bytes(), end.as_bytes()),
        None => KeyRange::key(token.as_bytes()),
    }
}

fn render_range(range: &KeyRange) -> String {
    let key = String::from_utf8_lossy(&range.key);
    match range.range_end.as_slice() {
        [] => key.into_owned(),
        [0] => format!("{key}.."),
        end => format!("{key}..{}", String::from_utf8_lossy(end)),
    }
}

fn kind_of(word: &str) -> PermissionKind {
    match word {
        "read" => PermissionKind::Read,
        "write" => PermissionKind::Write,
        "readwrite" => PermissionKind::ReadWrite,
        other => panic!("unknown permission kind {other}"),
    }
}

fn render(result: Result<AuthResponse, engine::auth::AuthError>, store: &AuthStore) -> String {
    let revision = store.revision();
    match result {
        Ok(AuthResponse::Done) => format!("ok rev={revision}"),
        Ok(AuthResponse::User { roles }) => format!("roles=[{}]", roles.join(",")),
        Ok(AuthResponse::Names { names }) => format!("[{}]", names.join(",")),
        Ok(AuthResponse::Role { permissions }) => {
            let rendered: Vec<String> = permissions
                .iter()
                .map(|permission| {
                    format!(
                        "{} {}",
                        permission.kind.name(),
                        render_range(&permission.range)
                    )
                })
                .collect();
            format!("[{}]", rendered.join(", "))
        }
        Ok(other) => format!("{other:?}"),
        Err(error) => format!("error {}", error.code()),
    }
}

fn run_line(store: &mut AuthStore, line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    // `""` stands for the empty name.
    let name = |index: usize| words[index].replace("\"\"", "");
    let request = match words[0] {
        "user-add" => AuthRequest::UserAdd {
            name: name(1),
            password_hash: words.get(2).map(|hash| hash.as_bytes().to_vec()),
        },
        "user-del" => AuthRequest::UserDelete { name: name(1) },
        "user-get" => AuthRequest::UserGet { name: name(1) },
        "user-list" => AuthRequest::UserList,
        "user-passwd" => AuthRequest::UserChangePassword {
            name: name(1),
            password_hash: words[2].as_bytes().to_vec(),
        },
        "user-grant" => AuthRequest::UserGrantRole {
            user: name(1),
            role: name(2),
        },
        "user-revoke" => AuthRequest::UserRevokeRole {
            user: name(1),
            role: name(2),
        },
        "role-add" => AuthRequest::RoleAdd { name: name(1) },
        "role-del" => AuthRequest::RoleDelete { name: name(1) },
        "role-get" => AuthRequest::RoleGet { name: name(1) },
        "role-list" => AuthRequest::RoleList,
        "grant" => AuthRequest::RoleGrantPermission {
            role: name(1),
            permission: Permission {
                kind: kind_of(words[2]),
                range: keys_of(words[3]),
            },
        },
        "revoke" => AuthRequest::RoleRevokePermission {
            role: name(1),
            range: keys_of(words[2]),
        },
        "enable" => AuthRequest::Enable,
        "disable" => AuthRequest::Disable,
        "status" => return format!("enabled={} rev={}", store.is_enabled(), store.revision()),
        "check" => return check(store, &words[1..]),
        "admin" => {
            let info = AuthInfo {
                user: name(1),
                revision: store.revision(),
            };
            return match store.check_admin(Some(&info)) {
                Ok(()) => "allowed".to_string(),
                Err(error) => format!("error {}", error.code()),
            };
        }
        other => panic!("unknown command {other}"),
    };
    let result = store.apply(&request);
    render(result, store)
}

fn check(store: &AuthStore, words: &[&str]) -> String {
    let (user, revision) = match words[0].split_once('@') {
        Some((user, revision)) => (user, revision.parse().expect("revision")),
        None => (words[0], store.revision()),
    };
    let info = (user != "-").then(|| AuthInfo {
        user: user.to_string(),
        revision,
    });
    let ranges: Vec<KeyRange> = words[2..].iter().map(|word| keys_of(word)).collect();
    let access = match words[1] {
        "read" => Access {
            read: ranges,
            write: Vec::new(),
        },
        "write" => Access {
            read: Vec::new(),
            write: ranges,
        },
        other => panic!("unknown access {other}"),
    };
    match store.check(info.as_ref(), &access) {
        Ok(()) => "allowed".to_string(),
        Err(error) => format!("error {}", error.code()),
    }
}

fn run_script(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).expect("script reads");
    let mut store = AuthStore::default();
    let mut output = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            output.push_str(line);
            output.push('\n');
            continue;
        }
        let answer = run_line(&mut store, line);
        output.push_str(&format!("> {line}\n  {answer}\n"));
        // Every state the script reaches survives the snapshot codec unchanged.
        let decoded = AuthStore::decode(&store.encode()).expect("the store decodes");
        assert_eq!(decoded, store);
    }
    output
}

#[test]
fn auth_scripts() {
    insta::glob!("auth/scripts/*.txt", |path| {
        insta::assert_snapshot!(run_script(path));
    });
}
