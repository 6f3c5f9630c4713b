//! Users, their sessions, project members and invitations (Activepieces' users and project
//! roles). Passwords are kept as argon2id hashes and session tokens as sha-256 hashes: a leaked
//! store yields neither.

use super::{from_json, hash_api_key, to_json, Result, Store};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub created: String,
    pub updated: String,
    pub email: String,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    /// `ADMIN` (the platform's: every project, projects and keys) or `MEMBER`.
    pub platform_role: String,
    pub status: String,
    /// argon2id, PHC string; never serialized out of the store layer's callers.
    #[serde(default)]
    pub password_hash: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub user_id: String,
    /// Seconds since the epoch after which the token is refused.
    pub expires: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub id: String,
    pub created: String,
    pub updated: String,
    pub project_id: String,
    pub user_id: String,
    /// `Admin`, `Editor`, `Operator` or `Viewer`.
    pub role: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Invitation {
    pub id: String,
    pub created: String,
    pub updated: String,
    pub email: String,
    pub project_id: String,
    pub project_role: String,
    /// `PENDING` until the invited person signs up (or signs in), then `ACCEPTED`.
    pub status: String,
}

fn user_member_key(user: &str, member: &str) -> Vec<u8> {
    let mut k = user.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(member.as_bytes());
    k
}

fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

impl Store {
    pub fn put_user(&self, user: &User) -> Result<()> {
        self.users.insert(user.id.as_bytes(), to_json(user))?;
        self.user_emails.insert(email_key(&user.email).as_bytes(), user.id.as_bytes())?;
        Ok(())
    }

    pub fn get_user(&self, id: &str) -> Result<Option<User>> {
        self.users.get(id.as_bytes())?.map(|v| from_json(&v)).transpose()
    }

    pub fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        match self.user_emails.get(email_key(email).as_bytes())? {
            Some(id) => self.get_user(&String::from_utf8_lossy(&id)),
            None => Ok(None),
        }
    }

    pub fn has_users(&self) -> bool {
        !self.users.is_empty()
    }

    /// A new session for `user_id` until `expires`; the token is returned once.
    pub fn create_session(&self, user_id: &str, expires: i64) -> Result<String> {
        let token = format!("ses-{}{}", crate::ids::new_id(), crate::ids::new_id());
        let session = Session { user_id: user_id.into(), expires };
        self.sessions.insert(hash_api_key(&token).as_bytes(), to_json(&session))?;
        Ok(token)
    }

    /// The session of a token that has not expired (an expired one is removed).
    pub fn session(&self, token: &str, now: i64) -> Result<Option<Session>> {
        let key = hash_api_key(token);
        let Some(v) = self.sessions.get(key.as_bytes())? else { return Ok(None) };
        let session: Session = from_json(&v)?;
        if session.expires <= now {
            self.sessions.remove(key.as_bytes())?;
            return Ok(None);
        }
        Ok(Some(session))
    }

    pub fn end_session(&self, token: &str) -> Result<()> {
        self.sessions.remove(hash_api_key(token).as_bytes())?;
        Ok(())
    }

    pub fn put_member(&self, member: &Member) -> Result<()> {
        self.members_by_user.insert(user_member_key(&member.user_id, &member.id), &[])?;
        self.members.insert(member.id.as_bytes(), to_json(member))?;
        Ok(())
    }

    pub fn get_member(&self, id: &str) -> Result<Option<Member>> {
        self.members.get(id.as_bytes())?.map(|v| from_json(&v)).transpose()
    }

    pub fn delete_member(&self, id: &str) -> Result<()> {
        if let Some(m) = self.get_member(id)? {
            self.members_by_user.remove(user_member_key(&m.user_id, id))?;
        }
        self.members.remove(id.as_bytes())?;
        Ok(())
    }

    /// Members of a project (`Some`), or every membership of a user (`user`, from its index:
    /// this is read on each request a user makes).
    pub fn list_members(&self, project: Option<&str>, user: Option<&str>) -> Result<Vec<Member>> {
        let mut out: Vec<Member> = Vec::new();
        let mut keep = |m: Member| {
            if project.is_none_or(|p| p == m.project_id) && user.is_none_or(|u| u == m.user_id) {
                out.push(m);
            }
        };
        match user {
            Some(u) => {
                for key in self.members_by_user.scan_prefix(user_member_key(u, "")).keys() {
                    let key = key?;
                    let id = String::from_utf8_lossy(&key[u.len() + 1..]).into_owned();
                    if let Some(m) = self.get_member(&id)? {
                        keep(m);
                    }
                }
            }
            None => {
                for v in self.members.iter().values() {
                    keep(from_json(&v?)?);
                }
            }
        }
        out.sort_by(|a, b| a.created.cmp(&b.created));
        Ok(out)
    }

    pub fn put_invitation(&self, invitation: &Invitation) -> Result<()> {
        self.invitations.insert(invitation.id.as_bytes(), to_json(invitation))?;
        Ok(())
    }

    pub fn get_invitation(&self, id: &str) -> Result<Option<Invitation>> {
        self.invitations.get(id.as_bytes())?.map(|v| from_json(&v)).transpose()
    }

    pub fn delete_invitation(&self, id: &str) -> Result<()> {
        self.invitations.remove(id.as_bytes())?;
        Ok(())
    }

    pub fn list_invitations(&self, project: Option<&str>, email: Option<&str>) -> Result<Vec<Invitation>> {
        let mut out: Vec<Invitation> = Vec::new();
        for v in self.invitations.iter().values() {
            let i: Invitation = from_json(&v?)?;
            if project.is_none_or(|p| p == i.project_id) && email.is_none_or(|e| email_key(e) == email_key(&i.email)) {
                out.push(i);
            }
        }
        out.sort_by(|a, b| a.created.cmp(&b.created));
        Ok(out)
    }
}
