import Foundation
import Runtime
import SwiftProtobuf

/// Bounded protobuf decoding for the SavedModel readers: a nesting budget from `ReaderLimits`,
/// and every swift-protobuf failure turned into a `ClipSafetyError` naming what was decoded.
enum SavedModelProtobuf {
    static func options(_ limits: ReaderLimits) -> BinaryDecodingOptions {
        var o = BinaryDecodingOptions()
        o.messageDepthLimit = Swift.max(1, limits.maxDepth)
        o.discardUnknownFields = true
        return o
    }

    static func decode<M: SwiftProtobuf.Message>(_: M.Type, from data: Data, what: String, limits: ReaderLimits) throws -> M {
        do {
            return try M(serializedBytes: data, options: options(limits))
        } catch let e as BinaryDecodingError {
            switch e {
            case .truncated:
                throw ClipSafetyError.truncated("\(what): protobuf message is cut short")
            case .messageDepthLimit:
                throw ClipSafetyError.limitExceeded("\(what): protobuf nesting deeper than \(limits.maxDepth)")
            default:
                throw ClipSafetyError.malformed("\(what): not a valid protobuf message (\(e))")
            }
        } catch {
            throw ClipSafetyError.malformed("\(what): not a valid protobuf message (\(error))")
        }
    }
}

extension Tensorflow_DataType {
    /// The safetensors dtype of a numeric TensorFlow dtype; nil for strings, resources, etc.
    var nativeDType: DType? {
        switch rawValue {
        case 1: return .f32
        case 2: return .f64
        case 3: return .i32
        case 4: return .u8
        case 5: return .i16
        case 6: return .i8
        case 9: return .i64
        case 10: return .bool
        case 14: return .bf16
        case 19: return .f16
        default: return nil
        }
    }

    /// TensorFlow's name of the dtype, for messages.
    var tfName: String {
        switch rawValue {
        case 1: return "float32"
        case 2: return "float64"
        case 3: return "int32"
        case 4: return "uint8"
        case 5: return "int16"
        case 6: return "int8"
        case 7: return "string"
        case 9: return "int64"
        case 10: return "bool"
        case 14: return "bfloat16"
        case 19: return "float16"
        case 20: return "resource"
        case 21: return "variant"
        default: return "dtype \(rawValue)"
        }
    }
}

extension Tensorflow_TensorShapeProto {
    /// The dimensions, or nil when the rank is unknown or a dimension is negative (unknown).
    var knownDims: [Int]? {
        guard !unknownRank else { return nil }
        var dims: [Int] = []
        for d in dim {
            guard d.size >= 0, d.size <= Int64(Int.max) else { return nil }
            dims.append(Int(d.size))
        }
        return dims
    }
}
