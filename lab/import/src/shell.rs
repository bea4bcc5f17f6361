//! Just enough of a POSIX shell to follow the scripts people write around ipvsadm: the
//! ipvsadm lines of an `ipvsadm-save` file or `ipvsadm -R` input, and of init scripts and
//! rc.local snippets with variables, `\` continuations, `case "$1" in start) ... ;;`,
//! `for X in ...; do ... done`, functions and `if ...; then ... fi`.
//!
//! Nothing is executed. The start path is taken (the `start` branch of a `case`, the `then`
//! branch of an `if`); the ipvsadm lines on it come out in order with their line numbers,
//! the iptables MARK rules too (a firewall-mark service's addresses). Every other command is
//! skipped, with a warning where it could change what the rules do (addresses, routes,
//! sysctls, iptables, files sourced), and every ipvsadm line not on the start path is
//! named in a warning too.
use std::collections::HashMap;
use std::net::IpAddr;

use lvslab_core::Protocol;

/// What the script does on its start path.
#[derive(Debug, Default)]
pub(crate) struct Run {
    /// ipvsadm lines, in order.
    pub ipvsadm: Vec<Found>,
    /// `iptables -t mangle ... -j MARK --set-mark N` rules.
    pub marks: Vec<MarkRule>,
    /// (line, text) to warn about.
    pub warnings: Vec<(usize, String)>,
}

/// One ipvsadm invocation.
#[derive(Debug)]
pub(crate) struct Found {
    /// Line of the file it starts on (1-based).
    pub line: usize,
    /// Its options after expansion (without the program name).
    pub args: Vec<String>,
}

/// A MARK rule that routes packets to a firewall-mark service.
#[derive(Debug, Clone)]
pub(crate) struct MarkRule {
    /// Line it is on.
    pub line: usize,
    /// The mark it sets.
    pub mark: u32,
    /// `-d ADDRESS[/32]`.
    pub vip: IpAddr,
    /// `-p tcp|udp`.
    pub protocol: Protocol,
    /// `--dport PORT`.
    pub port: u16,
}

/// A line the reader cannot follow.
#[derive(Debug)]
pub(crate) struct ShellError {
    /// Where.
    pub line: usize,
    /// Why, then the fix.
    pub message: String,
}

/// A command (the text between `;`, `&&`, `||`, `|` or newlines) with its line.
#[derive(Debug, Clone)]
struct Seg {
    line: usize,
    words: Vec<String>,
    /// A `#` comment followed it on its line.
    commented: bool,
    /// Ended by `;;`.
    dsemi: bool,
}

/// Split the text into commands: `\` continuations joined, comments dropped, quotes kept.
fn segments(text: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    let phys: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < phys.len() {
        let start = i + 1;
        let mut logical = String::new();
        loop {
            let l = phys[i];
            i += 1;
            // An odd number of trailing backslashes continues the line.
            let trailing = l.len() - l.trim_end_matches('\\').len();
            if trailing % 2 == 1 && i < phys.len() {
                logical.push_str(&l[..l.len() - 1]);
                logical.push(' ');
                continue;
            }
            logical.push_str(l);
            break;
        }
        split_line(start, &logical, &mut out);
    }
    out
}

fn split_line(line: usize, s: &str, out: &mut Vec<Seg>) {
    let chars: Vec<char> = s.chars().collect();
    let mut words: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut k = 0;
    let mut commented = false;
    let flush = |words: &mut Vec<String>, cur: &mut String, in_word: &mut bool| {
        if *in_word {
            words.push(std::mem::take(cur));
            *in_word = false;
        }
    };
    let mut push_seg = |words: &mut Vec<String>, dsemi: bool, commented: bool| {
        if !words.is_empty() || dsemi {
            out.push(Seg {
                line,
                words: std::mem::take(words),
                commented,
                dsemi,
            });
        }
    };
    while k < chars.len() {
        let c = chars[k];
        match c {
            '\'' => {
                in_word = true;
                cur.push(c);
                k += 1;
                while k < chars.len() && chars[k] != '\'' {
                    cur.push(chars[k]);
                    k += 1;
                }
                if k < chars.len() {
                    cur.push('\'');
                }
            }
            '"' => {
                in_word = true;
                cur.push(c);
                k += 1;
                while k < chars.len() && chars[k] != '"' {
                    if chars[k] == '\\' && k + 1 < chars.len() {
                        cur.push(chars[k]);
                        k += 1;
                    }
                    cur.push(chars[k]);
                    k += 1;
                }
                if k < chars.len() {
                    cur.push('"');
                }
            }
            '`' => {
                in_word = true;
                cur.push(c);
                k += 1;
                while k < chars.len() && chars[k] != '`' {
                    cur.push(chars[k]);
                    k += 1;
                }
                if k < chars.len() {
                    cur.push('`');
                }
            }
            '$' if chars.get(k + 1) == Some(&'(') || chars.get(k + 1) == Some(&'{') => {
                // $( ... ) and ${ ... } stay one word, nested as written.
                let (open, close) = if chars[k + 1] == '(' {
                    ('(', ')')
                } else {
                    ('{', '}')
                };
                in_word = true;
                cur.push('$');
                cur.push(open);
                k += 2;
                let mut depth = 1;
                while k < chars.len() && depth > 0 {
                    if chars[k] == open {
                        depth += 1;
                    } else if chars[k] == close {
                        depth -= 1;
                    }
                    cur.push(chars[k]);
                    k += 1;
                }
                continue;
            }
            '\\' if k + 1 < chars.len() => {
                in_word = true;
                cur.push(c);
                cur.push(chars[k + 1]);
                k += 1;
            }
            '#' if !in_word => {
                commented = !words.is_empty();
                break;
            }
            ' ' | '\t' | '\r' => flush(&mut words, &mut cur, &mut in_word),
            ';' => {
                flush(&mut words, &mut cur, &mut in_word);
                let dsemi = chars.get(k + 1) == Some(&';');
                if dsemi {
                    k += 1;
                }
                push_seg(&mut words, dsemi, false);
            }
            // `start|restart)`: a case pattern's alternatives, not a pipe.
            '|' if in_word
                && chars.get(k + 1) != Some(&'|')
                && chars[k + 1..]
                    .iter()
                    .take_while(|c| !c.is_whitespace())
                    .any(|&c| c == ')') =>
            {
                cur.push(c);
            }
            '&' | '|' => {
                flush(&mut words, &mut cur, &mut in_word);
                // `2>&1` and `>&2` are redirections, not separators.
                if c == '&' && words.last().is_some_and(|w| w.ends_with('>')) {
                    let mut w = words.pop().unwrap_or_default();
                    w.push('&');
                    cur = w;
                    in_word = true;
                    k += 1;
                    continue;
                }
                if chars.get(k + 1) == Some(&c) {
                    k += 1;
                }
                push_seg(&mut words, false, false);
            }
            _ => {
                in_word = true;
                cur.push(c);
            }
        }
        k += 1;
    }
    flush(&mut words, &mut cur, &mut in_word);
    push_seg(&mut words, false, commented);
}

/// A word's value: fields after expansion, or the name of what could not be expanded.
fn expand(word: &str, vars: &HashMap<String, String>) -> Result<Vec<String>, String> {
    let chars: Vec<char> = word.chars().collect();
    let mut fields: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut have = false;
    let mut k = 0;
    let mut dq = false;
    while k < chars.len() {
        let c = chars[k];
        match c {
            '\'' if !dq => {
                have = true;
                k += 1;
                while k < chars.len() && chars[k] != '\'' {
                    cur.push(chars[k]);
                    k += 1;
                }
            }
            '"' => {
                have = true;
                dq = !dq;
            }
            '\\' if k + 1 < chars.len() => {
                cur.push(chars[k + 1]);
                k += 1;
            }
            '`' => return Err(format!("`{word}` (a command substitution)")),
            '$' => {
                let (value, used) = variable(&chars[k + 1..], vars, word)?;
                k += used;
                if dq {
                    cur.push_str(&value);
                } else {
                    // Unquoted: the value splits into fields.
                    let mut parts = value.split_whitespace().peekable();
                    if value.starts_with(char::is_whitespace) && (have || !cur.is_empty()) {
                        fields.push(std::mem::take(&mut cur));
                    }
                    while let Some(p) = parts.next() {
                        cur.push_str(p);
                        have = true;
                        if parts.peek().is_some() {
                            fields.push(std::mem::take(&mut cur));
                        }
                    }
                    if value.ends_with(char::is_whitespace) && !cur.is_empty() {
                        fields.push(std::mem::take(&mut cur));
                        have = false;
                    }
                }
            }
            _ => {
                have = true;
                cur.push(c);
            }
        }
        k += 1;
    }
    if have || !cur.is_empty() {
        fields.push(cur);
    }
    Ok(fields)
}

/// `$NAME`, `${NAME}`, `${NAME:-default}`, `${NAME[@]}`, `$1`: the value and how many
/// characters after the `$` it used.
fn variable(
    rest: &[char],
    vars: &HashMap<String, String>,
    word: &str,
) -> Result<(String, usize), String> {
    let lookup = |name: &str| -> Result<String, String> {
        vars.get(name)
            .cloned()
            .ok_or_else(|| format!("${name} (not set earlier in the file)"))
    };
    match rest.first() {
        Some('{') => {
            let end = rest
                .iter()
                .position(|&c| c == '}')
                .ok_or_else(|| format!("`{word}` (an unclosed ${{...}})"))?;
            let inner: String = rest[1..end].iter().collect();
            let name_end = inner
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(inner.len());
            let (name, op) = inner.split_at(name_end);
            let value = match op {
                "" | "[@]" | "[*]" => lookup(name)?,
                _ if op.starts_with(":-") || op.starts_with('-') => {
                    let default = op.trim_start_matches(':').trim_start_matches('-');
                    match vars
                        .get(name)
                        .filter(|v| !v.is_empty() || !op.starts_with(':'))
                    {
                        Some(v) => v.clone(),
                        None => default.to_string(),
                    }
                }
                _ => {
                    return Err(format!(
                        "`${{{inner}}}` (a parameter expansion lvslab does not follow)"
                    ))
                }
            };
            Ok((value, end + 1))
        }
        Some('(') => Err(format!("`{word}` (a command substitution)")),
        Some(c) if c.is_ascii_digit() || "#@*?$!".contains(*c) => {
            Err(format!("${c} (set when the script runs, not in the file)"))
        }
        Some(c) if c.is_ascii_alphabetic() || *c == '_' => {
            let n = rest
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                .count();
            let name: String = rest[..n].iter().collect();
            Ok((lookup(&name)?, n))
        }
        // A lone `$` is itself.
        _ => Ok(("$".to_string(), 0)),
    }
}

/// Strip the quotes of a word without expanding it (patterns, loop variable names).
fn unquote(w: &str) -> String {
    w.chars().filter(|&c| c != '\'' && c != '"').collect()
}

fn assignment(w: &str) -> Option<(&str, &str)> {
    let (name, value) = w.split_once('=')?;
    let ok = !name.is_empty()
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    ok.then_some((name, value))
}

fn basename(w: &str) -> &str {
    w.rsplit('/').next().unwrap_or(w)
}

/// Does the segment list from `i` hold an ipvsadm command (to warn about skipped ones)?
fn mentions_ipvsadm(segs: &[Seg]) -> Option<usize> {
    segs.iter()
        .find(|s| {
            s.words.iter().take(3).any(|w| {
                let w = unquote(w);
                basename(&w) == "ipvsadm"
                    || w.to_ascii_lowercase().contains("ipvsadm}")
                    || w.eq_ignore_ascii_case("$ipvsadm")
            }) || s.words.first().is_some_and(|w| w.starts_with('-'))
        })
        .map(|s| s.line)
}

struct Reader {
    vars: HashMap<String, String>,
    functions: HashMap<String, Vec<Seg>>,
    run: Run,
    exited: bool,
    depth: usize,
}

/// Read `text` and follow its start path.
pub(crate) fn read(text: &str) -> Result<Run, ShellError> {
    let segs = segments(text);
    let mut r = Reader {
        vars: HashMap::new(),
        functions: HashMap::new(),
        run: Run::default(),
        exited: false,
        depth: 0,
    };
    r.block(&segs)?;
    Ok(r.run)
}

/// The index after the block that closes at a segment whose first word is one of `ends`,
/// counting nested `opens`. Returns (index of the closing segment).
fn find_close(segs: &[Seg], from: usize, opens: &[&str], ends: &[&str]) -> Option<usize> {
    let mut depth = 0usize;
    for (i, s) in segs.iter().enumerate().skip(from) {
        let first = s.words.first().map(String::as_str).unwrap_or("");
        if opens.contains(&first) {
            depth += 1;
        } else if ends.contains(&first) {
            if depth == 0 {
                return Some(i);
            }
            depth -= 1;
        }
    }
    None
}

impl Reader {
    fn block(&mut self, segs: &[Seg]) -> Result<(), ShellError> {
        let mut i = 0;
        while i < segs.len() && !self.exited {
            let s = &segs[i];
            let first = s.words.first().map(String::as_str).unwrap_or("");
            match first {
                "case" => {
                    let end = find_close(segs, i + 1, &["case"], &["esac"]).ok_or_else(|| {
                        ShellError {
                            line: s.line,
                            message: "`case` without `esac`".into(),
                        }
                    })?;
                    self.case(&segs[i + 1..end], s.line)?;
                    i = end + 1;
                }
                "for" => {
                    let end = find_close(segs, i + 1, &["for", "while", "until"], &["done"])
                        .ok_or_else(|| ShellError {
                            line: s.line,
                            message: "`for` without `done`".into(),
                        })?;
                    self.for_loop(s, &segs[i + 1..end])?;
                    i = end + 1;
                }
                "while" | "until" => {
                    let end = find_close(segs, i + 1, &["for", "while", "until"], &["done"])
                        .ok_or_else(|| ShellError {
                            line: s.line,
                            message: format!("`{first}` without `done`"),
                        })?;
                    if let Some(line) = mentions_ipvsadm(&segs[i..end]) {
                        return Err(ShellError {
                            line,
                            message: format!(
                                "an ipvsadm line inside a `{first}` loop (line {}): lvslab cannot tell how often it runs; write the lines out, or use `for X in ...`",
                                s.line
                            ),
                        });
                    }
                    i = end + 1;
                }
                "if" => {
                    let end =
                        find_close(segs, i + 1, &["if"], &["fi"]).ok_or_else(|| ShellError {
                            line: s.line,
                            message: "`if` without `fi`".into(),
                        })?;
                    self.if_block(&segs[i..end])?;
                    i = end + 1;
                }
                "function" => {
                    let name = s.words.get(1).map(|w| w.trim_end_matches("()").to_string());
                    i = self.function(segs, i, name.unwrap_or_default())?;
                }
                w if w.ends_with("()") && w.len() > 2 => {
                    i = self.function(segs, i, w.trim_end_matches("()").to_string())?;
                }
                w if s
                    .words
                    .get(1)
                    .is_some_and(|n| n == "()" || n.starts_with("()")) =>
                {
                    i = self.function(segs, i, w.to_string())?;
                }
                "{" | "}" | "then" | "do" | "done" | "fi" | "esac" | "else" => {
                    // Braces of a group, or a stray keyword: the words after it are a command.
                    if s.words.len() > 1 {
                        let mut rest = s.clone();
                        rest.words.remove(0);
                        self.command(&rest)?;
                    }
                    i += 1;
                }
                _ => {
                    self.command(s)?;
                    i += 1;
                }
            }
        }
        Ok(())
    }

    fn function(&mut self, segs: &[Seg], i: usize, name: String) -> Result<usize, ShellError> {
        let line = segs[i].line;
        // The body runs from the `{` (on this segment or the next) to its matching `}`.
        let mut open = i;
        if !segs[i].words.iter().any(|w| w == "{" || w.ends_with('{')) {
            open = i + 1;
        }
        let mut depth = 0i32;
        let mut end = None;
        for (k, s) in segs.iter().enumerate().skip(open) {
            for w in &s.words {
                if w == "{" || (k == open && w.ends_with('{')) {
                    depth += 1;
                } else if w == "}" {
                    depth -= 1;
                }
            }
            if depth <= 0 && k > open
                || (depth == 0 && k == open && s.words.last().is_some_and(|w| w == "}"))
            {
                end = Some(k);
                break;
            }
        }
        let end = end.ok_or_else(|| ShellError {
            line,
            message: format!("function {name} without its closing `}}`"),
        })?;
        let mut body: Vec<Seg> = segs[open + 1..end].to_vec();
        // Words after `{` on the opening line belong to the body.
        if let Some(pos) = segs[open].words.iter().position(|w| w == "{") {
            let rest: Vec<String> = segs[open].words[pos + 1..].to_vec();
            if !rest.is_empty() {
                body.insert(
                    0,
                    Seg {
                        words: rest,
                        ..segs[open].clone()
                    },
                );
            }
        }
        self.functions.insert(name, body);
        Ok(end + 1)
    }

    fn case(&mut self, body: &[Seg], line: usize) -> Result<(), ShellError> {
        // Branches: a segment whose first word holds `PATTERN)` starts one, `;;` ends it.
        let mut branches: Vec<(Vec<String>, usize, Vec<Seg>)> = Vec::new();
        let mut open = false;
        for s in body {
            if !open && !s.words.is_empty() {
                let joined = s.words.join(" ");
                if let Some(pos) = joined.find(')') {
                    let pats: Vec<String> = joined[..pos]
                        .trim()
                        .trim_start_matches('(')
                        .split('|')
                        .map(|p| unquote(p.trim()))
                        .collect();
                    let rest = joined[pos + 1..].trim();
                    let mut segs = Vec::new();
                    if !rest.is_empty() {
                        let mut tmp = Vec::new();
                        split_line(s.line, rest, &mut tmp);
                        segs.extend(tmp);
                    }
                    branches.push((pats, s.line, segs));
                    open = !s.dsemi;
                    continue;
                }
            }
            if let Some(b) = branches.last_mut() {
                if !s.words.is_empty() {
                    b.2.push(Seg {
                        dsemi: false,
                        ..s.clone()
                    });
                }
            }
            if s.dsemi {
                open = false;
            }
        }
        let taken = branches
            .iter()
            .position(|(p, _, _)| p.iter().any(|p| p == "start"));
        if taken.is_none() {
            if let Some(l) = branches.iter().find_map(|b| mentions_ipvsadm(&b.2)) {
                self.run.warnings.push((
                    l,
                    format!("the `case` at line {line} has no `start)` branch: its ipvsadm lines were not read (lvslab takes the start path)"),
                ));
            }
        }
        for (k, (pats, bline, segs)) in branches.iter().enumerate() {
            if Some(k) == taken {
                self.block(segs)?;
            } else if let Some(l) = mentions_ipvsadm(segs) {
                self.run.warnings.push((
                    l,
                    format!(
                        "`{})` branch (line {bline}) not taken: lvslab takes the start path, so its ipvsadm lines were not read",
                        pats.join("|")
                    ),
                ));
            }
        }
        Ok(())
    }

    fn for_loop(&mut self, head: &Seg, body: &[Seg]) -> Result<(), ShellError> {
        let var = head.words.get(1).cloned().unwrap_or_default();
        if head.words.get(2).map(String::as_str) != Some("in") {
            return Err(ShellError {
                line: head.line,
                message: format!("`for {var}` without `in WORDS`: lvslab follows only `for X in ...; do ... done`"),
            });
        }
        let mut items = Vec::new();
        for w in &head.words[3..] {
            match expand(w, &self.vars) {
                Ok(f) => items.extend(f),
                Err(what) => {
                    if mentions_ipvsadm(body).is_some() {
                        return Err(ShellError {
                            line: head.line,
                            message: format!("the loop's list uses {what}: set it in the file, or write the ipvsadm lines out"),
                        });
                    }
                    return Ok(());
                }
            }
        }
        let body: Vec<Seg> = body
            .iter()
            .filter(|s| s.words.first().map(String::as_str) != Some("do") || s.words.len() > 1)
            .cloned()
            .map(|mut s| {
                if s.words.first().map(String::as_str) == Some("do") {
                    s.words.remove(0);
                }
                s
            })
            .collect();
        for it in items {
            self.vars.insert(var.clone(), it);
            self.block(&body)?;
        }
        Ok(())
    }

    fn if_block(&mut self, segs: &[Seg]) -> Result<(), ShellError> {
        // segs[0] is `if COND`; the `then` branch runs to the first else/elif at depth 0.
        let mut then_start = None;
        let mut k = 0;
        while k < segs.len() {
            if segs[k].words.first().map(String::as_str) == Some("then") {
                then_start = Some(k);
                break;
            }
            k += 1;
        }
        let Some(t) = then_start else {
            return Err(ShellError {
                line: segs[0].line,
                message: "`if` without `then`".into(),
            });
        };
        let stop = find_close(segs, t + 1, &["if"], &["else", "elif"]).unwrap_or(segs.len());
        let mut then_body = segs[t..stop].to_vec();
        then_body[0].words.remove(0);
        self.block(&then_body)?;
        if stop < segs.len() {
            if let Some(l) = mentions_ipvsadm(&segs[stop..]) {
                self.run.warnings.push((
                    l,
                    format!(
                        "the `else`/`elif` of the `if` at line {} was not read: lvslab takes the `then` branch",
                        segs[0].line
                    ),
                ));
            }
        }
        Ok(())
    }

    fn command(&mut self, s: &Seg) -> Result<(), ShellError> {
        let mut words: Vec<&str> = s.words.iter().map(String::as_str).collect();
        // Drop redirections: `> file`, `2>&1`, `>/dev/null`.
        let mut kept = Vec::new();
        let mut k = 0;
        while k < words.len() {
            let w = words[k];
            let is_redir = w.starts_with('>')
                || w.starts_with('<')
                || w.starts_with("&>")
                || (w.len() > 1 && w.as_bytes()[0].is_ascii_digit() && w[1..].starts_with('>'));
            if is_redir {
                let bare = matches!(w, ">" | ">>" | "<" | "2>" | "1>" | "2>>" | "&>");
                if w.starts_with('<')
                    && words
                        .first()
                        .is_some_and(|f| basename(&unquote(f)) == "ipvsadm")
                {
                    return Err(ShellError {
                        line: s.line,
                        message: "ipvsadm reads rules from another file here (`<`): lvslab cannot follow it; import that rules file itself".into(),
                    });
                }
                k += if bare { 2 } else { 1 };
                continue;
            }
            kept.push(w);
            k += 1;
        }
        words = kept;
        // Assignments before a command apply to that command only; alone they set variables.
        let mut n_assign = 0;
        while n_assign < words.len() && assignment(words[n_assign]).is_some() {
            n_assign += 1;
        }
        if n_assign == words.len() {
            for w in &words {
                self.assign(w);
            }
            return Ok(());
        }
        words.drain(..n_assign);
        while let Some(&w) = words.first() {
            if matches!(w, "sudo" | "exec" | "command" | "nohup" | "time" | "!") {
                words.remove(0);
            } else {
                break;
            }
        }
        let Some(&first) = words.first() else {
            return Ok(());
        };
        if matches!(
            first,
            "export" | "readonly" | "local" | "declare" | "typeset"
        ) {
            for w in &words[1..] {
                self.assign(w);
            }
            return Ok(());
        }
        if first == "exit" {
            self.exited = true;
            return Ok(());
        }
        if let Some(body) = self.functions.get(first).cloned() {
            if self.depth > 20 {
                return Err(ShellError {
                    line: s.line,
                    message: format!("function {first} calls itself too deeply"),
                });
            }
            self.depth += 1;
            let r = self.block(&body);
            self.depth -= 1;
            return r;
        }
        // The program: its name after expansion, with `$IPVSADM` unset still meaning ipvsadm.
        let raw_first = unquote(first);
        let program = match expand(first, &self.vars) {
            Ok(f) => f.first().cloned().unwrap_or_default(),
            Err(_) if raw_first.to_ascii_lowercase().contains("ipvsadm") => {
                self.run.warnings.push((
                    s.line,
                    format!("{raw_first} is not set in the file: taken to be ipvsadm"),
                ));
                "ipvsadm".to_string()
            }
            Err(_) => return Ok(()),
        };
        let prog = basename(&program);
        let restore_style = raw_first.starts_with('-');
        if prog == "ipvsadm" || restore_style {
            let from = if restore_style { 0 } else { 1 };
            let mut args = Vec::new();
            for w in &words[from..] {
                match expand(w, &self.vars) {
                    Ok(f) => args.extend(f),
                    Err(what) => {
                        return Err(ShellError {
                            line: s.line,
                            message: format!("this ipvsadm line uses {what}: lvslab reads the file, it does not run it; set the value earlier in the file"),
                        })
                    }
                }
            }
            if restore_style && s.commented {
                self.run.warnings.push((
                    s.line,
                    "a comment after the rule: `ipvsadm -R` refuses it (unexpected argument `#`), ipvsadm-restore keeps only comment lines starting with #; lvslab drops it".into(),
                ));
            }
            self.run.ipvsadm.push(Found { line: s.line, args });
            return Ok(());
        }
        let args: Vec<String> = words[1..]
            .iter()
            .flat_map(|w| expand(w, &self.vars).unwrap_or_else(|_| vec![unquote(w)]))
            .collect();
        match prog {
            "ipvsadm-restore" => Err(ShellError {
                line: s.line,
                message: "ipvsadm-restore reads its rules from another file: lvslab cannot follow it; import that rules file itself".into(),
            }),
            "iptables" | "ip6tables" | "iptables-legacy" | "iptables-nft" => {
                if let Some(m) = mark_rule(s.line, &args) {
                    self.run.marks.push(m);
                } else {
                    self.warn_not_run(s.line, &program, &args, "a firewall rule; a topology does not carry iptables rules");
                }
                Ok(())
            }
            "ifconfig" => {
                self.warn_not_run(s.line, &program, &args, "it configures an address; a topology gives each node its addresses (and dr/tun real servers the VIP on lo)");
                Ok(())
            }
            "ip" if args.first().is_some_and(|a| {
                ["addr", "address", "a", "route", "r", "ro", "rule", "link", "l", "tunnel", "neigh"]
                    .contains(&a.as_str())
            }) => {
                self.warn_not_run(s.line, &program, &args, "it configures addresses, links or routes; a topology sets those itself");
                Ok(())
            }
            "route" => {
                self.warn_not_run(s.line, &program, &args, "it changes routes; a topology sets routes itself");
                Ok(())
            }
            "sysctl" if args.iter().any(|a| a.contains('=') || a == "-p") => {
                self.warn_not_run(s.line, &program, &args, "it sets kernel parameters; a topology sets sysctls itself");
                Ok(())
            }
            "echo" if s.words.iter().any(|w| w.contains("/proc/sys/")) => {
                // Say which parameter: the redirection was dropped from `args` above.
                let target: Vec<String> = s.words.iter().skip_while(|w| *w != first).skip(1).map(|w| unquote(w)).collect();
                self.warn_not_run(s.line, &program, &target, "it sets a kernel parameter under /proc/sys; a topology sets sysctls itself");
                Ok(())
            }
            "." | "source" => {
                let f = args.first().cloned().unwrap_or_default();
                if !f.ends_with("/functions") && !f.ends_with("init-functions") {
                    self.run.warnings.push((
                        s.line,
                        format!("`{program} {f}` not read: lvslab reads only this file, so variables set there are unknown"),
                    ));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn warn_not_run(&mut self, line: usize, program: &str, args: &[String], why: &str) {
        self.run.warnings.push((
            line,
            format!("`{program} {}` not run: {why}", args.join(" ")),
        ));
    }

    fn assign(&mut self, w: &str) {
        let Some((name, value)) = assignment(w) else {
            return;
        };
        // NAME=(a b c): an array, kept as its words (for `${NAME[@]}`).
        let value = value.trim_start_matches('(').trim_end_matches(')');
        match expand(value, &self.vars) {
            Ok(f) => {
                self.vars.insert(name.to_string(), f.join(" "));
            }
            Err(_) => {
                // A value lvslab cannot know: using it later is an error that names it.
                self.vars.remove(name);
            }
        }
    }
}

/// `iptables -t mangle -A PREROUTING -d VIP[/32] -p tcp --dport PORT -j MARK --set-mark N`.
fn mark_rule(line: usize, args: &[String]) -> Option<MarkRule> {
    let get = |names: &[&str]| {
        args.iter()
            .position(|a| names.contains(&a.as_str()))
            .and_then(|i| args.get(i + 1))
    };
    if get(&["-t", "--table"]).map(String::as_str) != Some("mangle") {
        return None;
    }
    if get(&["-j", "--jump"]).map(String::as_str) != Some("MARK") {
        return None;
    }
    let mark = get(&["--set-mark", "--set-xmark"])?;
    let mark = mark.split('/').next()?;
    let mark = match mark.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16).ok()?,
        None => mark.parse().ok()?,
    };
    let dst = get(&["-d", "--destination", "--dst"])?;
    let vip: IpAddr = dst
        .strip_suffix("/32")
        .or_else(|| dst.strip_suffix("/128"))
        .unwrap_or(dst)
        .parse()
        .ok()?;
    let protocol = match get(&["-p", "--protocol"]).map(String::as_str) {
        Some("tcp") => Protocol::Tcp,
        Some("udp") => Protocol::Udp,
        _ => return None,
    };
    let port = get(&["--dport", "--destination-port"])?.parse().ok()?;
    Some(MarkRule {
        line,
        mark,
        vip,
        protocol,
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<(usize, String)> {
        read(text)
            .unwrap_or_else(|e| panic!("{}: {}", e.line, e.message))
            .ipvsadm
            .into_iter()
            .map(|f| (f.line, f.args.join(" ")))
            .collect()
    }

    #[test]
    fn variables_continuations_and_comments() {
        let t = "VIP=192.168.1.250\nRS=\"10.0.0.1\"  # the web server\nipvsadm -A -t $VIP:80 \\\n  -s rr   # round robin\n/sbin/ipvsadm -a -t ${VIP}:80 -r \"$RS\" -g\n";
        assert_eq!(
            args(t),
            vec![
                (3, "-A -t 192.168.1.250:80 -s rr".to_string()),
                (5, "-a -t 192.168.1.250:80 -r 10.0.0.1 -g".to_string())
            ]
        );
    }

    #[test]
    fn start_branch_functions_and_loops() {
        let t = "IPVSADM=/sbin/ipvsadm\nsetup() {\n  $IPVSADM -A -t 10.0.0.1:80\n  for r in 10.0.0.2 10.0.0.3; do $IPVSADM -a -t 10.0.0.1:80 -r $r; done\n}\ncase \"$1\" in\n  start|restart)\n    setup\n    ;;\n  stop) $IPVSADM -C ;;\nesac\n";
        let r = read(t).unwrap();
        let got: Vec<String> = r.ipvsadm.iter().map(|f| f.args.join(" ")).collect();
        assert_eq!(
            got,
            vec![
                "-A -t 10.0.0.1:80",
                "-a -t 10.0.0.1:80 -r 10.0.0.2",
                "-a -t 10.0.0.1:80 -r 10.0.0.3"
            ]
        );
        assert!(
            r.warnings
                .iter()
                .any(|(l, w)| *l == 10 && w.contains("`stop)`")),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn unknown_values_in_an_ipvsadm_line_are_errors() {
        let e = read("ipvsadm -A -t $VIP:80\n").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.message.contains("$VIP"), "{}", e.message);
        let e = read("ipvsadm -R < /etc/ipvsadm.rules\n").unwrap_err();
        assert!(e.message.contains("rules file itself"), "{}", e.message);
    }

    #[test]
    fn mark_rules_are_read() {
        let r = read("iptables -t mangle -A PREROUTING -d 10.0.0.1/32 -p tcp --dport 443 -j MARK --set-mark 3\n").unwrap();
        assert_eq!(r.marks[0].mark, 3);
        assert_eq!(r.marks[0].port, 443);
    }
}
