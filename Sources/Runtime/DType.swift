/// Element types of stored tensors, named as safetensors names them.
public enum DType: String, CaseIterable, Sendable, Codable {
    case f16 = "F16"
    case bf16 = "BF16"
    case f32 = "F32"
    case f64 = "F64"
    case i8 = "I8"
    case i16 = "I16"
    case i32 = "I32"
    case i64 = "I64"
    case u8 = "U8"
    case bool = "BOOL"

    public var byteSize: Int {
        switch self {
        case .u8, .i8, .bool: return 1
        case .f16, .bf16, .i16: return 2
        case .f32, .i32: return 4
        case .f64, .i64: return 8
        }
    }

    public var isFloatingPoint: Bool {
        switch self {
        case .f16, .bf16, .f32, .f64: return true
        default: return false
        }
    }
}

/// Element count and byte size of a shape, or nil when either overflows `Int`.
public func checkedByteCount(shape: [Int], dtype: DType) -> (elements: Int, bytes: Int)? {
    checkedByteCount(shape: shape, dtype: dtype.byteSize)
}
