import Foundation

/// A JSON Schema checker for the subset docs/INSPECT-JSON.md uses (`type`, `const`, `enum`,
/// `minimum`, `properties`, `required`, `additionalProperties: false`, `items`, `anyOf`,
/// `$ref` to `#/$defs/…`), so tests can hold real outputs against the documented schemas.
public struct JSONSchema {
    public let root: [String: Any]

    public init(_ root: [String: Any]) { self.root = root }

    /// The schema in `doc` (docs/INSPECT-JSON.md unless said) that follows the marker
    /// `<!-- schema: ID -->`.
    public static func documented(_ id: String, in doc: String = "docs/INSPECT-JSON.md") throws -> JSONSchema {
        let text = try String(contentsOfFile: Fixtures.repoRoot + "/" + doc, encoding: .utf8)
        guard let marker = text.range(of: "<!-- schema: \(id) -->"),
              let open = text.range(of: "```json\n", range: marker.upperBound..<text.endIndex),
              let close = text.range(of: "\n```", range: open.upperBound..<text.endIndex) else {
            throw CocoaError(.fileReadCorruptFile)
        }
        let object = try JSONSerialization.jsonObject(with: Data(text[open.upperBound..<close.lowerBound].utf8))
        guard let dict = object as? [String: Any] else { throw CocoaError(.fileReadCorruptFile) }
        return JSONSchema(dict)
    }

    /// Every violation, as `path: what`; empty when `value` conforms.
    public func violations(of value: Any) -> [String] {
        var out: [String] = []
        check(value, against: root, path: "$", into: &out)
        return out
    }

    private func resolve(_ schema: [String: Any]) -> [String: Any] {
        guard let ref = schema["$ref"] as? String, ref.hasPrefix("#/$defs/"),
              let defs = root["$defs"] as? [String: Any],
              let target = defs[String(ref.dropFirst("#/$defs/".count))] as? [String: Any] else { return schema }
        return resolve(target)
    }

    static func isBool(_ v: Any) -> Bool {
        guard let n = v as? NSNumber else { return false }
        return String(cString: n.objCType) == "c"
    }

    static func typeMatches(_ v: Any, _ type: String) -> Bool {
        switch type {
        case "null": return v is NSNull
        case "boolean": return isBool(v)
        case "string": return v is String
        case "array": return v is [Any]
        case "object": return v is [String: Any]
        case "number": return v is NSNumber && !isBool(v)
        case "integer":
            guard let n = v as? NSNumber, !isBool(v) else { return false }
            return n.doubleValue.rounded() == n.doubleValue
        default: return false
        }
    }

    static func equal(_ a: Any, _ b: Any) -> Bool {
        if a is NSNull || b is NSNull { return a is NSNull && b is NSNull }
        if let x = a as? String, let y = b as? String { return x == y }
        if let x = a as? NSNumber, let y = b as? NSNumber { return x == y && isBool(x) == isBool(y) }
        return false
    }

    private func check(_ value: Any, against raw: [String: Any], path: String, into out: inout [String]) {
        let schema = resolve(raw)
        if let anyOf = schema["anyOf"] as? [[String: Any]] {
            let ok = anyOf.contains { alternative in
                var scratch: [String] = []
                check(value, against: alternative, path: path, into: &scratch)
                return scratch.isEmpty
            }
            if !ok { out.append("\(path): matches none of anyOf") }
        }
        if let t = schema["type"] {
            let types = (t as? [String]) ?? [(t as? String) ?? "?"]
            guard types.contains(where: { Self.typeMatches(value, $0) }) else {
                out.append("\(path): \(type(of: value)) is not \(types)")
                return
            }
        }
        if let c = schema["const"], !Self.equal(value, c) { out.append("\(path): not the constant \(c)") }
        if let e = schema["enum"] as? [Any], !e.contains(where: { Self.equal(value, $0) }) {
            out.append("\(path): \(value) not in \(e)")
        }
        if let min = schema["minimum"] as? NSNumber, let n = value as? NSNumber, !Self.isBool(value), n.doubleValue < min.doubleValue {
            out.append("\(path): \(n) below \(min)")
        }
        if let object = value as? [String: Any] {
            let properties = schema["properties"] as? [String: Any] ?? [:]
            for key in schema["required"] as? [String] ?? [] where object[key] == nil {
                out.append("\(path): missing required '\(key)'")
            }
            if schema["additionalProperties"] as? Bool == false {
                for key in object.keys where properties[key] == nil { out.append("\(path): unexpected key '\(key)'") }
            }
            for (key, sub) in properties {
                if let v = object[key], let s = sub as? [String: Any] { check(v, against: s, path: "\(path).\(key)", into: &out) }
            }
        }
        if let array = value as? [Any], let items = schema["items"] as? [String: Any] {
            for (i, v) in array.enumerated() { check(v, against: items, path: "\(path)[\(i)]", into: &out) }
        }
    }
}
