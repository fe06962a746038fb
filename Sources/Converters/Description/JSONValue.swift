import Foundation
import Runtime

/// A JSON value read from a model file (Keras configs), as plain data: nothing in it is ever
/// imported or evaluated. Object keys keep no order.
public indirect enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// Most values (numbers, strings, literals, arrays, objects) one JSON document may hold.
    /// Keras configs of any head hold a few thousand; each value costs Foundation and this
    /// enum about 100 bytes, so 10⁷ numbers would take gigabytes before any other check.
    public static let maxValues = 1 << 20

    /// Parses `data`, refusing nesting deeper than `limits.maxDepth` and more than `maxValues`
    /// values, both counted on the bytes before Foundation builds anything.
    public init(parsing data: Data, what: String, limits: ReaderLimits) throws {
        try Self.checkShape(data, what: what, limits: limits)
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            throw ClipSafetyError.malformed("\(what) is not valid JSON")
        }
        self = try JSONValue(root, depth: 0, what: what, limits: limits)
    }

    /// One pass over the bytes, outside strings: the nesting depth, and the values (each
    /// container, and each scalar counted at the comma or bracket that ends it).
    static func checkShape(_ data: Data, what: String, limits: ReaderLimits) throws {
        var depth = 0
        var values = 0
        var inString = false
        var escaped = false
        var pendingScalar = false
        for byte in data {
            if inString {
                if escaped { escaped = false } else if byte == 0x5C { escaped = true } else if byte == 0x22 { inString = false }
                continue
            }
            switch byte {
            case 0x22:  // "
                inString = true
                pendingScalar = true
            case 0x5B, 0x7B:  // [ {
                depth += 1
                values += 1
                guard depth <= limits.maxDepth else {
                    throw ClipSafetyError.limitExceeded("\(what) nests deeper than \(limits.maxDepth) levels")
                }
            case 0x5D, 0x7D, 0x2C, 0x3A:  // ] } , :
                if pendingScalar { values += 1; pendingScalar = false }
                if byte == 0x5D || byte == 0x7D { depth -= 1 }
            case 0x20, 0x09, 0x0A, 0x0D:
                break
            default:
                pendingScalar = true
            }
            guard values <= maxValues else {
                throw ClipSafetyError.limitExceeded("\(what) holds more than \(maxValues) JSON values")
            }
        }
    }

    init(_ any: Any, depth: Int, what: String, limits: ReaderLimits) throws {
        guard depth <= limits.maxDepth else {
            throw ClipSafetyError.limitExceeded("\(what) nests deeper than \(limits.maxDepth) levels")
        }
        switch any {
        case is NSNull: self = .null
        case let s as String: self = .string(s)
        case let n as NSNumber:
            // JSON true/false arrive as NSNumbers whose Objective-C type is `c`.
            self = String(cString: n.objCType) == "c" ? .bool(n.boolValue) : .number(n.doubleValue)
        case let a as [Any]: self = .array(try a.map { try JSONValue($0, depth: depth + 1, what: what, limits: limits) })
        case let o as [String: Any]:
            self = .object(try o.mapValues { try JSONValue($0, depth: depth + 1, what: what, limits: limits) })
        default: throw ClipSafetyError.malformed("\(what) holds a value JSON does not have")
        }
    }

    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    public var string: String? { if case .string(let s) = self { return s }; return nil }
    public var number: Double? { if case .number(let n) = self { return n }; return nil }
    public var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var array: [JSONValue]? { if case .array(let a) = self { return a }; return nil }
    public var object: [String: JSONValue]? { if case .object(let o) = self { return o }; return nil }
    /// The number when it is a whole number that fits `Int`.
    public var int: Int? {
        guard let n = number, n.rounded() == n, abs(n) < 9e15 else { return nil }
        return Int(n)
    }
}
