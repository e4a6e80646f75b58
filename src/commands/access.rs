//! `airlock users`, `service-accounts`, `roles`, `access`, `whoami`: identity and access
//! administration against a server's `/api/v1`.

use airlock_api::identity as api;
use anyhow::Result;
use clap::Subcommand;

use crate::client::parse_duration;
use crate::commands::common::{Common, print_as, read_stdin_secret};
use crate::commands::pages::{query_value, read_pages};

/// `airlock users`.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user; prints a generated password once unless --password-stdin is given.
    Add {
        /// The user name.
        name: String,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        common: Common,
    },
    /// List users and service accounts with their roles.
    List {
        #[command(flatten)]
        common: Common,
    },
    /// Disable a user or service account; its tokens stop working at once.
    Disable {
        /// The name.
        name: String,
        #[command(flatten)]
        common: Common,
    },
    /// Enable a disabled user or service account again (its old logins and tokens stay revoked).
    Enable {
        /// The name.
        name: String,
        #[command(flatten)]
        common: Common,
    },
    /// Change your password: the current and the new one on standard input, one per line. Every
    /// login and token of the user ends; the CLI then logs in again with the new password.
    Passwd {
        /// The user [default: the user of the stored login for the server].
        #[arg(short = 'u', long)]
        username: Option<String>,
        /// Read the current and the new password from standard input (required).
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Reset a user's password (access-admin; not your own, not another access-admin's): prints a
    /// generated temporary password once unless --password-stdin gives one. The user must change
    /// it (airlock users passwd) before using it for anything else.
    ResetPassword {
        /// The user.
        name: String,
        /// Read the temporary password from standard input.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        common: Common,
    },
}

/// `airlock service-accounts`.
#[derive(Debug, Subcommand)]
pub enum ServiceAccountsCommand {
    /// Create a service account and print its API key once.
    Add {
        /// The account name.
        name: String,
        /// When the key expires, e.g. 30d (bounded by access.max_api_key_days).
        #[arg(long)]
        expires: String,
        #[command(flatten)]
        common: Common,
    },
    /// Revoke an API key by its id (the `alk_<id>_...` part, also shown at creation).
    RevokeKey {
        /// The key id.
        key_id: String,
        #[command(flatten)]
        common: Common,
    },
    /// A service account's named API keys (several per account, each with its own expiry).
    #[command(subcommand)]
    Keys(crate::commands::service_account_keys::KeysCommand),
}

/// `airlock roles`.
#[derive(Debug, Subcommand)]
pub enum RolesCommand {
    /// Bind a role to a principal in a scope.
    Grant {
        /// Who.
        principal: String,
        /// The role: reader, developer, builder, promoter, approver, deployer, key-admin,
        /// access-admin, auditor, break-glass.
        role: String,
        /// Where: `*`, a stage (`prod`), or a stage and repositories (`prod/team/*`).
        #[arg(long)]
        scope: String,
        #[command(flatten)]
        common: Common,
    },
    /// Remove a role binding.
    Revoke {
        /// Who.
        principal: String,
        /// The role.
        role: String,
        /// The scope it was granted in.
        #[arg(long)]
        scope: String,
        #[command(flatten)]
        common: Common,
    },
    /// List role bindings (of one principal if given).
    List {
        /// Only this principal.
        principal: Option<String>,
        #[command(flatten)]
        common: Common,
    },
}

/// `airlock access` (just-in-time elevation).
#[derive(Debug, Subcommand)]
pub enum AccessCommand {
    /// Ask for a role for a while; another access-admin grants it.
    Request {
        /// The role.
        role: String,
        /// Where.
        #[arg(long)]
        scope: String,
        /// For how long, e.g. 1h (bounded by access.max_grant_secs).
        #[arg(long = "for")]
        duration: String,
        /// Why (an incident or change ticket).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        common: Common,
    },
    /// Grant a pending request (not your own).
    Grant {
        /// The request id.
        id: i64,
        #[command(flatten)]
        common: Common,
    },
    /// Deny a pending request.
    Deny {
        /// The request id.
        id: i64,
        #[command(flatten)]
        common: Common,
    },
    /// End a granted request early (its role binding is removed at once).
    Revoke {
        /// The request id.
        id: i64,
        #[command(flatten)]
        common: Common,
    },
    /// List requests.
    List {
        #[command(flatten)]
        common: Common,
    },
}

/// `airlock whoami`.
pub async fn whoami(common: Common) -> Result<u8> {
    let client = common.connect().await?;
    let me: airlock_api::identity::WhoAmI = client.get_as("/api/v1/whoami").await?;
    print_as(&common, &me, |me| {
        format!(
            "{} ({}, via {}) roles: {}",
            me.name,
            me.kind,
            me.auth_method,
            role_grants_text(&me.roles)
        )
    });
    Ok(0)
}

fn role_grants_text(roles: &[api::RoleGrant]) -> String {
    let list: Vec<String> = roles
        .iter()
        .map(|r| match &r.expires {
            Some(until) => format!("{}@{} (until {until})", r.role, r.scope),
            None => format!("{}@{}", r.role, r.scope),
        })
        .collect();
    if list.is_empty() {
        "-".into()
    } else {
        list.join(", ")
    }
}

/// `airlock users ...`.
pub async fn users(command: UsersCommand) -> Result<u8> {
    match command {
        UsersCommand::Add {
            name,
            password_stdin,
            common,
        } => {
            let password = if password_stdin {
                Some(read_stdin_secret()?)
            } else {
                None
            };
            let client = common.connect().await?;
            let created: api::UserAdded = client
                .post_as(
                    "/api/v1/users",
                    &api::AddUserRequest {
                        name: name.clone(),
                        password,
                    },
                )
                .await?;
            print_as(&common, &created, |v| match &v.password {
                Some(pw) => format!("created user {name}; initial password (shown once): {pw}"),
                None => format!("created user {name}"),
            });
        }
        UsersCommand::List { common } => {
            let client = common.connect().await?;
            let list: api::PrincipalList = read_pages(&client, "/api/v1/users", None).await?;
            print_as(&common, &list, |v| {
                v.principals
                    .iter()
                    .map(|p| {
                        format!(
                            "{:<24} {:<8} {:<11} {}",
                            p.name,
                            p.kind,
                            if p.disabled {
                                "disabled"
                            } else if p.password_must_change {
                                "must-change"
                            } else {
                                "active"
                            },
                            role_grants_text(&p.roles)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        UsersCommand::Disable { name, common } => {
            let client = common.connect().await?;
            let done: api::PrincipalState = client
                .post_as(&format!("/api/v1/users/{name}/disable"), &NoBody {})
                .await?;
            print_as(&common, &done, |_| {
                format!("disabled {name}; its tokens no longer work")
            });
        }
        UsersCommand::Enable { name, common } => {
            return crate::commands::account::enable(name, common).await;
        }
        UsersCommand::Passwd {
            username,
            password_stdin,
            common,
        } => return crate::commands::account::passwd(username, password_stdin, common).await,
        UsersCommand::ResetPassword {
            name,
            password_stdin,
            common,
        } => return crate::commands::account::reset_password(name, password_stdin, common).await,
    }
    Ok(0)
}

/// The empty JSON object the action routes (disable, revoke, grant ...) are posted with.
#[derive(serde::Serialize)]
pub(crate) struct NoBody {}

/// `airlock service-accounts ...`.
pub async fn service_accounts(command: ServiceAccountsCommand) -> Result<u8> {
    match command {
        ServiceAccountsCommand::Add {
            name,
            expires,
            common,
        } => {
            let expires_in_secs = parse_duration(&expires)?;
            let client = common.connect().await?;
            let created: api::ServiceAccountAdded = client
                .post_as(
                    "/api/v1/service-accounts",
                    &api::AddServiceAccountRequest {
                        name: name.clone(),
                        expires_in_secs,
                    },
                )
                .await?;
            print_as(&common, &created, |v| {
                format!(
                    "created service account {name}; API key (shown once, expires {}):\n{}",
                    v.expires, v.api_key
                )
            });
        }
        ServiceAccountsCommand::RevokeKey { key_id, common } => {
            let client = common.connect().await?;
            let done: api::CredentialRevoked = client
                .post_as(&format!("/api/v1/credentials/{key_id}/revoke"), &NoBody {})
                .await?;
            print_as(&common, &done, |_| format!("revoked key {key_id}"));
        }
        ServiceAccountsCommand::Keys(command) => {
            return crate::commands::service_account_keys::keys(command).await;
        }
    }
    Ok(0)
}

/// `airlock roles ...`.
pub async fn roles(command: RolesCommand) -> Result<u8> {
    match command {
        RolesCommand::Grant {
            principal,
            role,
            scope,
            common,
        } => {
            let client = common.connect().await?;
            let done: api::RoleGranted = client
                .post_as(
                    "/api/v1/roles/grant",
                    &api::RoleChangeRequest {
                        principal: principal.clone(),
                        role: role.clone(),
                        scope: scope.clone(),
                    },
                )
                .await?;
            print_as(&common, &done, |_| {
                format!("granted {role} in {scope} to {principal}")
            });
        }
        RolesCommand::Revoke {
            principal,
            role,
            scope,
            common,
        } => {
            let client = common.connect().await?;
            let done: api::RoleRevoked = client
                .post_as(
                    "/api/v1/roles/revoke",
                    &api::RoleChangeRequest {
                        principal: principal.clone(),
                        role: role.clone(),
                        scope: scope.clone(),
                    },
                )
                .await?;
            print_as(&common, &done, |_| {
                format!("revoked {role} in {scope} from {principal}")
            });
        }
        RolesCommand::List { principal, common } => {
            let client = common.connect().await?;
            let path = match &principal {
                Some(p) => format!("/api/v1/roles?principal={}", query_value(p)),
                None => "/api/v1/roles".into(),
            };
            let list: api::RoleBindingList = read_pages(&client, &path, None).await?;
            print_as(&common, &list, |v| {
                v.bindings
                    .iter()
                    .map(|b| {
                        format!(
                            "{:<24} {:<14} {:<24} {}",
                            b.principal,
                            b.role,
                            b.scope,
                            b.expires
                                .as_ref()
                                .map(|e| format!("until {e}"))
                                .unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(0)
}

/// `airlock access ...`.
pub async fn access(command: AccessCommand) -> Result<u8> {
    match command {
        AccessCommand::Request {
            role,
            scope,
            duration,
            reason,
            common,
        } => {
            let duration_secs = parse_duration(&duration)?;
            let client = common.connect().await?;
            let created: api::AccessRequestFiled = client
                .post_as(
                    "/api/v1/access-requests",
                    &api::NewAccessRequest {
                        role,
                        scope,
                        duration_secs,
                        reason,
                    },
                )
                .await?;
            print_as(&common, &created, |v| {
                format!(
                    "access request {} filed; another access-admin grants it with `airlock access grant {}`",
                    v.id, v.id
                )
            });
        }
        AccessCommand::Grant { id, common } => {
            let client = common.connect().await?;
            let done: api::AccessRequest = client
                .post_as(&format!("/api/v1/access-requests/{id}/grant"), &NoBody {})
                .await?;
            print_as(&common, &done, |v| {
                format!(
                    "granted request {id}: {} holds {} in {} until {}",
                    v.principal,
                    v.role,
                    v.scope,
                    v.expires.as_deref().unwrap_or("?")
                )
            });
        }
        AccessCommand::Deny { id, common } => {
            let client = common.connect().await?;
            let done: api::AccessRequest = client
                .post_as(&format!("/api/v1/access-requests/{id}/deny"), &NoBody {})
                .await?;
            print_as(&common, &done, |_| format!("denied request {id}"));
        }
        AccessCommand::Revoke { id, common } => {
            let client = common.connect().await?;
            let done: api::AccessRequest = client
                .post_as(&format!("/api/v1/access-requests/{id}/revoke"), &NoBody {})
                .await?;
            print_as(&common, &done, |_| format!("revoked request {id}"));
        }
        AccessCommand::List { common } => {
            let client = common.connect().await?;
            let list: api::AccessRequestList =
                read_pages(&client, "/api/v1/access-requests", None).await?;
            print_as(&common, &list, |v| {
                v.requests
                    .iter()
                    .map(|r| {
                        format!(
                            "#{} {:<10} {:<20} {:<14} {:<20} {}",
                            r.id, r.status, r.principal, r.role, r.scope, r.reason
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(0)
}
