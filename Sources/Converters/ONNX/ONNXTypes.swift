import Foundation
import Runtime

/// ONNX types, shapes and attributes in the terms of `FileDescription`.
enum ONNXTypes {
    /// The op type, prefixed with its domain outside the standard one (`com.microsoft.Attention`).
    static func qualifiedOp(_ node: Onnx_NodeProto) -> String {
        isStandard(node.domain) ? node.opType : "\(node.domain).\(node.opType)"
    }

    static func isStandard(_ domain: String) -> Bool { domain.isEmpty || domain == "ai.onnx" }

    /// Tensor dimensions, nil for symbolic or absent ones; nil for non-tensors or unknown rank.
    static func shape(_ type: Onnx_TypeProto) -> [Int?]? {
        guard case .tensorType(let t)? = type.value, t.hasShape else { return nil }
        return t.shape.dim.map { dim in
            if case .dimValue(let v)? = dim.value, v >= 0, v <= Int64(Int.max) { return Int(v) }
            return nil
        }
    }

    /// `float [N, 512]`, `int64 [N]`, `sequence`, … for notes.
    static func typeText(_ type: Onnx_TypeProto) -> String {
        switch type.value {
        case .tensorType(let t)?:
            guard t.hasShape else { return "\(ONNXDataType.name(t.elemType)) (rank unknown)" }
            let dims = t.shape.dim.map { dim -> String in
                switch dim.value {
                case .dimValue(let v)?: return String(v)
                case .dimParam(let p)?: return p
                case nil: return "?"
                }
            }
            return "\(ONNXDataType.name(t.elemType)) [\(dims.joined(separator: ", "))]"
        case .sequenceType?: return "sequence"
        case .mapType?: return "map"
        case .optionalType?: return "optional"
        case nil: return "untyped"
        }
    }

    /// A graph input or output as a signature port.
    static func port(_ info: Onnx_ValueInfoProto) -> ServingSignature.Port {
        var dtype = "untyped"
        if case .tensorType(let t)? = info.type.value { dtype = ONNXDataType.name(t.elemType) }
        return ServingSignature.Port(name: info.name, tensor: info.name, dtype: dtype, shape: shape(info.type))
    }

    /// An attribute's value as JSON (tensors and graphs summarised, never expanded).
    static func json(_ a: Onnx_AttributeProto) -> JSONValue {
        switch a.type {
        case .float: return .number(Double(a.f))
        case .int: return .number(Double(a.i))
        case .string: return .string(String(decoding: a.s, as: UTF8.self))
        case .floats: return .array(a.floats.map { .number(Double($0)) })
        case .ints: return .array(a.ints.map { .number(Double($0)) })
        case .strings: return .array(a.strings.map { .string(String(decoding: $0, as: UTF8.self)) })
        case .tensor: return .string("tensor \(ONNXDataType.name(a.t.dataType)) \(a.t.dims)")
        case .tensors: return .string("\(a.tensors.count) tensors")
        case .graph: return .string("subgraph '\(a.g.name)' of \(a.g.node.count) nodes")
        case .graphs: return .string("\(a.graphs.count) subgraphs")
        default: return .string("attribute of type \(a.type.rawValue)")
        }
    }
}
