//! A minimal JSON object writer for the one-line result (no allocation).

use core::fmt::{self, Write};

/// Writes one JSON object field by field into a `fmt::Write` sink.
pub struct JsonObject<'w, W: Write> {
    out: &'w mut W,
    first: bool,
}

impl<'w, W: Write> JsonObject<'w, W> {
    /// Opens an object (`{`).
    pub fn begin(out: &'w mut W) -> JsonObject<'w, W> {
        let _ = out.write_char('{');
        JsonObject { out, first: true }
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            let _ = self.out.write_char(',');
        }
        self.first = false;
        write_string(self.out, key);
        let _ = self.out.write_char(':');
    }

    /// An unsigned integer field.
    pub fn u64(&mut self, key: &str, value: u64) -> &mut Self {
        self.key(key);
        let _ = write!(self.out, "{value}");
        self
    }

    /// A number with `decimals` digits after the point (`null` if not finite).
    pub fn f64(&mut self, key: &str, value: f64, decimals: usize) -> &mut Self {
        self.key(key);
        if value.is_finite() {
            let _ = write!(self.out, "{value:.decimals$}");
        } else {
            let _ = self.out.write_str("null");
        }
        self
    }

    /// A string field.
    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        write_string(self.out, value);
        self
    }

    /// A string field formatted from `value`'s `Display` (escaped).
    pub fn display(&mut self, key: &str, value: impl fmt::Display) -> &mut Self {
        self.key(key);
        let _ = self.out.write_char('"');
        let _ = write!(Escaped(&mut *self.out), "{value}");
        let _ = self.out.write_char('"');
        self
    }

    /// A boolean field.
    pub fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.key(key);
        let _ = self.out.write_str(if value { "true" } else { "false" });
        self
    }

    /// A nested object field, written by `fill`.
    pub fn object(&mut self, key: &str, fill: impl FnOnce(&mut JsonObject<'_, W>)) -> &mut Self {
        self.key(key);
        let mut inner = JsonObject::begin(&mut *self.out);
        fill(&mut inner);
        inner.end();
        self
    }

    /// A nested array field, written by `fill`.
    pub fn array(&mut self, key: &str, fill: impl FnOnce(&mut JsonArray<'_, W>)) -> &mut Self {
        self.key(key);
        let mut inner = JsonArray::begin(&mut *self.out);
        fill(&mut inner);
        inner.end();
        self
    }

    /// A register value as a string of `digits` hex digits (`"0x0001"`).
    pub fn hex(&mut self, key: &str, value: u32, digits: usize) -> &mut Self {
        self.key(key);
        let _ = write!(self.out, "\"{value:#0width$x}\"", width = digits + 2);
        self
    }

    /// Closes the object (`}`).
    pub fn end(self) {
        let _ = self.out.write_char('}');
    }
}

/// Writes one JSON array element by element.
pub struct JsonArray<'w, W: Write> {
    out: &'w mut W,
    first: bool,
}

impl<'w, W: Write> JsonArray<'w, W> {
    fn begin(out: &'w mut W) -> JsonArray<'w, W> {
        let _ = out.write_char('[');
        JsonArray { out, first: true }
    }

    fn sep(&mut self) {
        if !self.first {
            let _ = self.out.write_char(',');
        }
        self.first = false;
    }

    /// An unsigned integer element.
    pub fn u64(&mut self, value: u64) -> &mut Self {
        self.sep();
        let _ = write!(self.out, "{value}");
        self
    }

    /// A value as a string of `digits` hex digits (as [`JsonObject::hex`]).
    pub fn hex(&mut self, value: u32, digits: usize) -> &mut Self {
        self.sep();
        let _ = write!(self.out, "\"{value:#0width$x}\"", width = digits + 2);
        self
    }

    /// A string element formatted from `value`'s `Display` (escaped).
    pub fn display(&mut self, value: impl fmt::Display) -> &mut Self {
        self.sep();
        let _ = self.out.write_char('"');
        let _ = write!(Escaped(&mut *self.out), "{value}");
        let _ = self.out.write_char('"');
        self
    }

    /// An object element, written by `fill`.
    pub fn object(&mut self, fill: impl FnOnce(&mut JsonObject<'_, W>)) -> &mut Self {
        self.sep();
        let mut inner = JsonObject::begin(&mut *self.out);
        fill(&mut inner);
        inner.end();
        self
    }

    fn end(self) {
        let _ = self.out.write_char(']');
    }
}

/// Escapes what is written through it as the inside of a JSON string.
struct Escaped<'a, W: Write>(&'a mut W);

impl<W: Write> Write for Escaped<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for c in text.chars() {
            match c {
                '"' => self.0.write_str("\\\"")?,
                '\\' => self.0.write_str("\\\\")?,
                '\n' => self.0.write_str("\\n")?,
                c if (c as u32) < 0x20 => write!(self.0, "\\u{:04x}", c as u32)?,
                c => self.0.write_char(c)?,
            }
        }
        Ok(())
    }
}

fn write_string<W: Write>(out: &mut W, text: &str) {
    let _ = out.write_char('"');
    let _ = Escaped(&mut *out).write_str(text);
    let _ = out.write_char('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_object() {
        let mut s = String::new();
        let mut o = JsonObject::begin(&mut s);
        o.str("result", "rx")
            .u64("frames", 10)
            .f64("pps", 1234.5678, 1)
            .f64("bad", f64::NAN, 1)
            .bool("ok", true)
            .display("shown", format_args!("{}\"{}", 1, 'x'))
            .object("errors", |e| {
                e.u64("corrupt", 0).str("why", "a\"b\n");
            })
            .hex("reg", 0x1c, 8)
            .array("list", |a| {
                a.u64(1).hex(0xab, 4).display("x").object(|o| {
                    o.u64("n", 2);
                });
            })
            .array("empty", |_| {});
        o.end();
        assert_eq!(
            s,
            r#"{"result":"rx","frames":10,"pps":1234.6,"bad":null,"ok":true,"shown":"1\"x","errors":{"corrupt":0,"why":"a\"b\n"},"reg":"0x0000001c","list":[1,"0x00ab","x",{"n":2}],"empty":[]}"#
        );
    }
}
