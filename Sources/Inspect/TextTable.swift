import Core
import Foundation

/// Plain-text layout for terminals: aligned tables, wrapped lines, all within `TextLayout.width`
/// columns. Widths count characters (every character clipsafety prints is one column wide).
public enum TextLayout {
    /// The width every line of `inspect` and `compare` fits in.
    public static let width = 80

    /// `text` broken at spaces into lines of at most `width` characters, continuation lines
    /// starting with `indent` spaces; a word longer than a line is cut.
    public static func wrap(_ text: String, width: Int = TextLayout.width, indent: Int = 0, firstIndent: Int? = nil) -> [String] {
        let text = PrintableText.escaped(text)
        var lines: [String] = []
        var current = String(repeating: " ", count: firstIndent ?? indent)
        var currentHasWord = false
        let pad = String(repeating: " ", count: indent)
        for word in text.split(separator: " ", omittingEmptySubsequences: true) {
            var word = Substring(word)
            while true {
                let needed = (currentHasWord ? 1 : 0) + word.count
                if current.count + needed <= width {
                    current += (currentHasWord ? " " : "") + word
                    currentHasWord = true
                    break
                }
                if currentHasWord {
                    lines.append(current)
                    current = pad
                    currentHasWord = false
                    continue
                }
                // A word longer than a whole line: cut it.
                let room = Swift.max(width - current.count, 1)
                lines.append(current + word.prefix(room))
                word = word.dropFirst(room)
                current = pad
                if word.isEmpty { break }
            }
        }
        if currentHasWord || lines.isEmpty { lines.append(currentHasWord ? current : String(current.prefix(0))) }
        return lines
    }

    /// `label` padded to `labelWidth`, then `value` wrapped under itself.
    public static func field(_ label: String, _ value: String, labelWidth: Int = 10) -> [String] {
        let head = label.padding(toLength: labelWidth, withPad: " ", startingAt: 0)
        var lines = wrap(value, indent: labelWidth, firstIndent: labelWidth)
        lines[0] = head + lines[0].dropFirst(labelWidth)
        return lines
    }

    /// `text` cut to `width` characters, ending in `…` when cut.
    public static func truncate(_ text: String, _ width: Int) -> String {
        guard text.count > width else { return text }
        guard width > 1 else { return String(text.prefix(width)) }
        return String(text.prefix(width - 1)) + "…"
    }
}

/// A table with a header row, columns aligned left or right, two spaces apart. When the
/// natural width exceeds the limit, the `flexible` column is cut (with `…`) to fit.
public struct TextTable {
    public enum Alignment { case left, right }

    public struct Column {
        public var title: String
        public var alignment: Alignment
        public init(_ title: String, _ alignment: Alignment = .left) {
            self.title = title
            self.alignment = alignment
        }
    }

    public var columns: [Column]
    public var rows: [[String]] = []
    /// Lines printed under a row (indented to the second column), e.g. notes.
    public var notes: [Int: [String]] = [:]
    /// Index of the column cut first when the table is too wide.
    public var flexible: Int
    public var indent: Int

    public init(_ columns: [Column], flexible: Int = 0, indent: Int = 0) {
        self.columns = columns
        self.flexible = flexible
        self.indent = indent
    }

    public mutating func add(_ row: [String], notes: [String] = []) {
        rows.append(row.map { PrintableText.escaped($0) })
        if !notes.isEmpty { self.notes[rows.count - 1] = notes.map { PrintableText.escaped($0) } }
    }

    /// The header line index in `render()`'s output is 0.
    public func render(width: Int = TextLayout.width) -> [String] {
        var widths = columns.indices.map { c in
            rows.reduce(columns[c].title.count) { Swift.max($0, c < $1.count ? $1[c].count : 0) }
        }
        let gap = 2
        let total = indent + widths.reduce(0, +) + gap * Swift.max(columns.count - 1, 0)
        if total > width, flexible < widths.count {
            widths[flexible] = Swift.max(widths[flexible] - (total - width), 3)
        }
        let noteIndent = indent + (columns.count > 1 ? widths[0] + gap : 0)
        func line(_ cells: [String]) -> String {
            var parts: [String] = []
            for (c, w) in widths.enumerated() {
                let text = TextLayout.truncate(c < cells.count ? cells[c] : "", w)
                let padding = String(repeating: " ", count: w - text.count)
                parts.append(columns[c].alignment == .left ? text + padding : padding + text)
            }
            var s = String(repeating: " ", count: indent) + parts.joined(separator: String(repeating: " ", count: gap))
            while s.last == " " { s.removeLast() }
            return s
        }
        var out = [line(columns.map(\.title))]
        for (i, row) in rows.enumerated() {
            out.append(line(row))
            for note in notes[i] ?? [] {
                out += TextLayout.wrap(note, width: width, indent: noteIndent + 2, firstIndent: noteIndent)
            }
        }
        return out
    }
}

/// Whether to colour output: only on a terminal, and never when `NO_COLOR` is set to a
/// non-empty value (https://no-color.org).
public enum Colour {
    public static func enabled(isTerminal: Bool, environment: [String: String]) -> Bool {
        guard isTerminal else { return false }
        if let v = environment["NO_COLOR"], !v.isEmpty { return false }
        if environment["TERM"] == "dumb" { return false }
        return true
    }

    /// The decision for this process's stdout.
    public static var forStandardOutput: Bool {
        enabled(isTerminal: isatty(STDOUT_FILENO) == 1, environment: ProcessInfo.processInfo.environment)
    }
}

/// Applies ANSI styles when colour is on; plain text otherwise. Styles wrap whole lines or
/// cells after layout, so widths never count escape codes.
public struct Styler: Sendable {
    public var enabled: Bool
    public init(enabled: Bool) { self.enabled = enabled }

    public func bold(_ s: String) -> String { enabled ? "\u{1B}[1m\(s)\u{1B}[0m" : s }
    public func dim(_ s: String) -> String { enabled ? "\u{1B}[2m\(s)\u{1B}[0m" : s }
    public func red(_ s: String) -> String { enabled ? "\u{1B}[31m\(s)\u{1B}[0m" : s }
    public func green(_ s: String) -> String { enabled ? "\u{1B}[32m\(s)\u{1B}[0m" : s }
}
