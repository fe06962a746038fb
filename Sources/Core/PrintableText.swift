/// Text a file controls (tensor and layer names, card text, labels, file names) made safe to
/// print: C0 and C1 control characters, DEL, Unicode line and paragraph separators and bidi
/// overrides become visible `\u{…}` escapes, so a name cannot move the cursor, clear the
/// screen, ring the bell, forge a line or reorder what a terminal shows.
public enum PrintableText {
    public static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var out = ""
        for u in text.unicodeScalars {
            if needsEscape(u) {
                out += "\\u{" + String(u.value, radix: 16) + "}"
            } else {
                out.unicodeScalars.append(u)
            }
        }
        return out
    }

    static func needsEscape(_ u: Unicode.Scalar) -> Bool {
        switch u.value {
        case 0x00...0x1F, 0x7F...0x9F: return true
        case 0x2028, 0x2029: return true
        case 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: return true
        default: return false
        }
    }
}
