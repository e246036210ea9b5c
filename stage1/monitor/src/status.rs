//! An app's status record as JSON: the fields and names of stage1-abi's `AppStatus` (camelCase),
//! written without serde or an allocator. App names are ACNames, but they are escaped anyway.

use core::fmt::{self, Write};

use crate::pod::App;

/// Write `app`'s status record.
pub fn write_json(w: &mut impl Write, app: &App<'_>) -> fmt::Result {
    let s = &app.spec;
    w.write_str("{\"app\":\"")?;
    for c in s.name.chars() {
        match c {
            '"' => w.write_str("\\\"")?,
            '\\' => w.write_str("\\\\")?,
            c if (c as u32) < 0x20 => write!(w, "\\u{:04x}", c as u32)?,
            c => w.write_char(c)?,
        }
    }
    write!(
        w,
        "\",\"pid\":{},\"createdNs\":{},\"startedNs\":{}",
        s.pid, s.created_ns, s.started_ns
    )?;
    if let Some(e) = &app.end {
        write!(
            w,
            ",\"finishedNs\":{},\"exitCode\":{},",
            e.finished_ns, e.exit_code
        )?;
        match e.signal {
            Some(sig) => write!(w, "\"signal\":{sig},")?,
            None => w.write_str("\"signal\":null,")?,
        }
        write!(w, "\"stoppedByPod\":{}", e.stopped_by_pod)?;
    }
    w.write_str("}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handoff::AppSpec;
    use crate::pod::End;
    use stage1_abi::AppStatus;

    fn parse(app: &App<'_>) -> AppStatus {
        let mut s = String::new();
        write_json(&mut s, app).unwrap();
        serde_json::from_str(&s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn reads_back_as_the_abi_type() {
        let spec = AppSpec {
            name: "web",
            pid: 42,
            created_ns: 1_700_000_000_000_000_001,
            started_ns: 1_700_000_000_000_000_002,
        };
        let mut app = App::new(spec);
        let st = parse(&app);
        assert_eq!(st.app, "web");
        assert_eq!(st.pid, Some(42));
        assert_eq!(st.started_ns, Some(1_700_000_000_000_000_002));
        assert!(!st.finished());
        app.end = Some(End {
            finished_ns: 1_700_000_000_000_000_003,
            exit_code: 0,
            signal: Some(15),
            stopped_by_pod: true,
        });
        let st = parse(&app);
        assert_eq!(
            st,
            AppStatus {
                app: "web".into(),
                pid: Some(42),
                created_ns: Some(1_700_000_000_000_000_001),
                started_ns: Some(1_700_000_000_000_000_002),
                finished_ns: Some(1_700_000_000_000_000_003),
                exit_code: Some(0),
                signal: Some(15),
                stopped_by_pod: true,
                oom_killed: false,
                user: None,
            }
        );
    }

    #[test]
    fn escapes_names() {
        let app = App::new(AppSpec {
            name: "a\"b\\c\n",
            pid: 1,
            created_ns: 0,
            started_ns: 0,
        });
        assert_eq!(parse(&app).app, "a\"b\\c\n");
    }
}
