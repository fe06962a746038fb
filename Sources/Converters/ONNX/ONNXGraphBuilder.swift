import Foundation
import Runtime

/// Collects the nodes and initializers of one ONNX graph while an exporter walks a native
/// graph: unique value names, typed constants, and node construction in one call each.
struct ONNXGraphBuilder {
    private(set) var nodes: [Onnx_NodeProto] = []
    private(set) var initializers: [Onnx_TensorProto] = []
    /// Every value name taken so far (graph input, initializers, node outputs).
    private var taken: Set<String>

    init(reserved: [String]) {
        taken = Set(reserved)
    }

    /// A name not yet taken, `base` itself when free, else `base_2`, `base_3`, …
    mutating func fresh(_ base: String) -> String {
        var name = base, n = 1
        while taken.contains(name) {
            n += 1
            name = "\(base)_\(n)"
        }
        taken.insert(name)
        return name
    }

    /// Adds a node `op` over `inputs`; returns the name of its output (`output`, or a fresh name
    /// from `name` when nil).
    @discardableResult
    mutating func add(_ op: String, _ inputs: [String], name: String, output: String? = nil,
                      attributes: [Onnx_AttributeProto] = []) -> String {
        var node = Onnx_NodeProto()
        node.opType = op
        node.name = fresh(name)
        node.input = inputs
        let out = output ?? fresh(name + "_out")
        node.output = [out]
        node.attribute = attributes
        nodes.append(node)
        return out
    }

    /// Adds a native tensor as an initializer under its own name, in its own element type.
    mutating func initializer(_ tensor: Tensor) throws {
        var t = Onnx_TensorProto()
        t.name = tensor.name
        t.dims = tensor.shape.map(Int64.init)
        t.dataType = try ONNXDataType.code(of: tensor.dtype)
        t.rawData = tensor.data
        taken.insert(tensor.name)
        initializers.append(t)
    }

    /// A float32 constant named from `base`.
    mutating func floats(_ base: String, _ values: [Float], shape: [Int]) throws -> String {
        let name = fresh(base)
        try initializer(Tensor(name: name, shape: shape, floats: values))
        return name
    }

    /// An int64 constant named from `base`.
    mutating func int64s(_ base: String, _ values: [Int64], shape: [Int]) throws -> String {
        let name = fresh(base)
        try initializer(Tensor(name: name, shape: shape, int64s: values))
        return name
    }

    /// A bool constant named from `base`.
    mutating func bools(_ base: String, _ values: [Bool], shape: [Int]) throws -> String {
        let name = fresh(base)
        try initializer(Tensor(name: name, dtype: .bool, shape: shape, data: Data(values.map { $0 ? 1 : 0 })))
        return name
    }

    /// A float64 scalar constant named from `base`.
    mutating func double(_ base: String, _ value: Double) throws -> String {
        let name = fresh(base)
        var bytes = Data()
        withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
        try initializer(Tensor(name: name, dtype: .f64, shape: [], data: bytes))
        return name
    }

    /// `input` as float32: itself for F32 tensors, else a `Cast` (exact for F16 and BF16,
    /// round to nearest for F64, as the runtime converts).
    mutating func asFloat32(_ tensor: Tensor) -> String {
        guard tensor.dtype != .f32 else { return tensor.name }
        return add("Cast", [tensor.name], name: tensor.name + ".f32", attributes: [.int("to", Int64(ONNXDataType.float))])
    }
}

extension Onnx_AttributeProto {
    static func int(_ name: String, _ value: Int64) -> Self {
        var a = Self()
        a.name = name
        a.type = .int
        a.i = value
        return a
    }
}

/// ONNX's TensorProto.DataType codes, and their native counterparts.
enum ONNXDataType {
    static let float: Int32 = 1, uint8: Int32 = 2, int8: Int32 = 3, int16: Int32 = 5, int32: Int32 = 6
    static let int64: Int32 = 7, bool: Int32 = 9, float16: Int32 = 10, double: Int32 = 11, bfloat16: Int32 = 16

    static func code(of dtype: DType) throws -> Int32 {
        switch dtype {
        case .f32: return float
        case .f16: return float16
        case .bf16: return bfloat16
        case .f64: return double
        case .i8: return int8
        case .i16: return int16
        case .i32: return int32
        case .i64: return int64
        case .u8: return uint8
        case .bool: return bool
        }
    }

    /// The native dtype of an ONNX element type, nil for those clipsafety does not compute with.
    static func native(_ code: Int32) -> DType? {
        switch code {
        case float: return .f32
        case float16: return .f16
        case bfloat16: return .bf16
        case double: return .f64
        case int8: return .i8
        case int16: return .i16
        case int32: return .i32
        case int64: return .i64
        case uint8: return .u8
        case bool: return .bool
        default: return nil
        }
    }

    /// ONNX's name of an element type, for descriptions.
    static func name(_ code: Int32) -> String {
        let names: [Int32: String] = [
            0: "undefined", 1: "float", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64",
            8: "string", 9: "bool", 10: "float16", 11: "double", 12: "uint32", 13: "uint64", 14: "complex64",
            15: "complex128", 16: "bfloat16", 17: "float8e4m3fn", 18: "float8e4m3fnuz", 19: "float8e5m2",
            20: "float8e5m2fnuz", 21: "uint4", 22: "int4", 23: "float4e2m1",
        ]
        return names[code] ?? "type \(code)"
    }

    /// Bytes per element of the fixed-width types; nil for strings, sub-byte and unknown types.
    static func byteSize(_ code: Int32) -> Int? {
        switch code {
        case 2, 3, 9, 17, 18, 19, 20: return 1
        case 4, 5, 10, 16: return 2
        case 1, 6, 12: return 4
        case 7, 11, 13, 14: return 8
        case 15: return 16
        default: return nil
        }
    }
}
