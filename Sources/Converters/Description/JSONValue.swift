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

    /// Parses `data`, refusing nesting deeper than `limits.maxDepth`.
    public init(parsing data: Data, what: String, limits: ReaderLimits) throws {
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            throw ClipSafetyError.malformed("\(what) is not valid JSON")
        }
        self = try JSONValue(root, depth: 0, what: what, limits: limits)
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
