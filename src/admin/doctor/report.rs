//! What doctor found: one check per line, `ok`, `warn` or `FAIL`, with what to do about
//! anything that is not ok; or the same checks as one JSON document.

use serde::Serialize;

use crate::log::escape_controls;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Status {
    #[serde(rename = "ok")]
    Ok,
    /// Works, but something will need a person (a stale attachment, a NIC ADD would refuse).
    #[serde(rename = "warn")]
    Warn,
    /// Pods will fail on this node until it is fixed.
    #[serde(rename = "FAIL")]
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// What was checked: `policy`, `state-dir`, `nic 0000:5e:00.1`, ...
    pub name: String,
    pub status: Status,
    pub detail: String,
    /// What to do about it (`null` when there is nothing to do).
    pub fix: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
}

#[derive(Serialize)]
struct Summary {
    ok: usize,
    warn: usize,
    fail: usize,
}

#[derive(Serialize)]
struct Document<'a> {
    checks: &'a [Check],
    summary: Summary,
}

impl Report {
    pub fn ok(&mut self, name: impl Into<String>, detail: impl Into<String>) {
        self.push(name.into(), Status::Ok, detail.into(), None);
    }

    pub fn warn(
        &mut self,
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.push(name.into(), Status::Warn, detail.into(), Some(fix.into()));
    }

    pub fn fail(
        &mut self,
        name: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.push(name.into(), Status::Fail, detail.into(), Some(fix.into()));
    }

    pub fn push(&mut self, name: String, status: Status, detail: String, fix: Option<String>) {
        self.checks.push(Check {
            name,
            status,
            detail,
            fix,
        });
    }

    pub fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }

    pub fn has_failures(&self) -> bool {
        self.count(Status::Fail) > 0
    }

    /// One line per check, `<status>  <name>: <detail>[; fix: <fix>]`, then a summary
    /// line. Names and details quote what tenants wrote (pod names): control characters
    /// are escaped, so a check is always one line.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let mut line = format!("{:<4}  {}: {}", c.status.as_str(), c.name, c.detail);
            if let Some(fix) = &c.fix {
                line.push_str("; fix: ");
                line.push_str(fix);
            }
            out.push_str(&escape_controls(&line));
            out.push('\n');
        }
        out.push_str(&format!(
            "doctor: {} ok, {} warn, {} FAIL\n",
            self.count(Status::Ok),
            self.count(Status::Warn),
            self.count(Status::Fail)
        ));
        out
    }

    /// `{"checks": [{"name", "status", "detail", "fix"}...], "summary": {"ok", "warn", "fail"}}`.
    pub fn json(&self) -> String {
        let doc = Document {
            checks: &self.checks,
            summary: Summary {
                ok: self.count(Status::Ok),
                warn: self.count(Status::Warn),
                fail: self.count(Status::Fail),
            },
        };
        serde_json::to_string_pretty(&doc).expect("a report serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_json_say_the_same() {
        let mut r = Report::default();
        r.ok(
            "policy",
            "/etc/amd-host-device/node.json (uid 0, mode 0644)",
        );
        r.warn(
            "attachment c1/net1",
            "pod a/b\nforged",
            "amd-host-device restore c1",
        );
        r.fail("state-dir", "read-only", "remount it");
        assert!(r.has_failures());
        let text = r.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert_eq!(
            lines[0],
            "ok    policy: /etc/amd-host-device/node.json (uid 0, mode 0644)"
        );
        assert_eq!(
            lines[1],
            "warn  attachment c1/net1: pod a/b\\nforged; fix: amd-host-device restore c1"
        );
        assert_eq!(lines[2], "FAIL  state-dir: read-only; fix: remount it");
        assert_eq!(lines[3], "doctor: 1 ok, 1 warn, 1 FAIL");
        let doc: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(doc["checks"][0]["status"], "ok");
        assert_eq!(doc["checks"][0]["fix"], serde_json::Value::Null);
        assert_eq!(doc["checks"][1]["detail"], "pod a/b\nforged");
        assert_eq!(doc["checks"][2]["status"], "FAIL");
        assert_eq!(
            doc["summary"],
            serde_json::json!({"ok": 1, "warn": 1, "fail": 1})
        );
    }
}
