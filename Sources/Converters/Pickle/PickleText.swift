import Foundation
import Runtime

/// The text operands of pickle opcodes, decoded as CPython decodes them, into symbols. A text
/// that Python would decode differently from what is certain here becomes `.opaqueText`, so a
/// global it names is reported as unresolved rather than guessed.
enum PickleText {
    /// BINUNICODE and friends: UTF-8 (Python also takes lone surrogates, which name no module).
    static func utf8(_ data: Data) -> PickleSymbol {
        guard let s = String(data: data, encoding: .utf8) else { return .opaqueText }
        return .text(s)
    }

    /// BINSTRING, SHORT_BINSTRING: Python 2 `str` bytes, decoded with the unpickler's encoding
    /// (ASCII by default, UTF-8 under torch.load). Non-ASCII bytes depend on that choice.
    static func bytes(_ data: Data) -> PickleSymbol {
        guard data.allSatisfy({ $0 < 0x80 }) else { return .opaqueText }
        return .text(String(decoding: data, as: UTF8.self))
    }

    /// STRING: a quoted Python 2 literal (`'os'`), backslash escapes decoded.
    static func quoted(_ line: String) throws -> PickleSymbol {
        let u = Array(line.utf8)
        guard u.count >= 2, u.first == u.last, u.first == UInt8(ascii: "'") || u.first == UInt8(ascii: "\"") else {
            throw ClipSafetyError.malformed("pickle: a STRING operand is not quoted")
        }
        guard let decoded = unescape(Array(u[1..<(u.count - 1)])) else { return .opaqueText }
        return bytes(Data(decoded))
    }

    /// UNICODE: raw-unicode-escape: bytes are Latin-1 except `\uXXXX` and `\UXXXXXXXX`.
    static func rawUnicodeEscape(_ data: Data) -> PickleSymbol {
        let b = [UInt8](data)
        var out = String.UnicodeScalarView()
        var i = 0
        while i < b.count {
            if b[i] == UInt8(ascii: "\\"), i + 1 < b.count, b[i + 1] == UInt8(ascii: "u") || b[i + 1] == UInt8(ascii: "U") {
                let width = b[i + 1] == UInt8(ascii: "u") ? 4 : 8
                guard i + 2 + width <= b.count, let v = UInt32(String(decoding: b[(i + 2)..<(i + 2 + width)], as: UTF8.self), radix: 16),
                      let scalar = Unicode.Scalar(v) else { return .opaqueText }
                out.append(scalar)
                i += 2 + width
            } else {
                out.append(Unicode.Scalar(b[i]))
                i += 1
            }
        }
        return .text(String(out))
    }

    /// Python's `codecs.escape_decode` for the escapes it knows; nil for anything unclear.
    static func unescape(_ b: [UInt8]) -> [UInt8]? {
        var out: [UInt8] = []
        var i = 0
        let simple: [UInt8: UInt8] = [0x5C: 0x5C, 0x27: 0x27, 0x22: 0x22, 0x6E: 0x0A, 0x74: 0x09, 0x72: 0x0D,
                                      0x61: 0x07, 0x62: 0x08, 0x66: 0x0C, 0x76: 0x0B, 0x30: 0x00]
        while i < b.count {
            guard b[i] == 0x5C else { out.append(b[i]); i += 1; continue }
            guard i + 1 < b.count else { return nil }
            let c = b[i + 1]
            if c == UInt8(ascii: "x"), i + 3 < b.count, let v = UInt8(String(decoding: b[(i + 2)...(i + 3)], as: UTF8.self), radix: 16) {
                out.append(v)
                i += 4
            } else if c == UInt8(ascii: "0"), i + 2 < b.count, (0x30...0x37).contains(b[i + 2]) {
                return nil  // octal escapes: not worth decoding here; the text becomes opaque
            } else if let v = simple[c] {
                out.append(v)
                i += 2
            } else {
                return nil
            }
        }
        return out
    }
}
