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
        try ProtoWireBudget.check(data, what: what, limits: limits)
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

/// A count of what swift-protobuf would allocate, on the wire bytes before it decodes them:
/// every length-delimited field whose bytes parse as a message may be one, and each decoded
/// message costs a heap object of a few hundred bytes however few bytes it took (`0a 00` is an
/// empty NodeDef: 20 million of them are 40 MB on disk and gigabytes decoded).
///
/// The catalog's largest `saved_model.pb` (3.8 MB) has 183 000 such fields; `maxMessages`
/// (2²¹) is 11 times that and lets a graph of 10⁶ nodes decode, while 2²¹ empty NodeDefs, the
/// most that pass, decode in about 200 MiB. Cost: one pass per nesting level over its bytes.
enum ProtoWireBudget {
    static let maxMessages = 1 << 21

    static func check(_ data: Data, what: String, limits: ReaderLimits) throws {
        var messages = 0
        let ok = data.withUnsafeBytes { raw -> Bool in
            let bytes = raw.bindMemory(to: UInt8.self)
            _ = walk(bytes, depth: 0, maxDepth: limits.maxDepth, messages: &messages)
            return messages <= maxMessages
        }
        guard ok else {
            throw ClipSafetyError.limitExceeded("\(what): protobuf holds more than \(maxMessages) messages; decoding them would take gigabytes")
        }
    }

    /// Counts the possible messages inside `bytes`; false when `bytes` is not a valid message
    /// (then it is a string or bytes field to its parent, but what it held so far still counts:
    /// swift-protobuf allocates before it meets the bad byte). Stops descending past the budget.
    private static func walk(_ bytes: UnsafeBufferPointer<UInt8>, depth: Int, maxDepth: Int, messages: inout Int) -> Bool {
        var i = 0
        let n = bytes.count
        func varint() -> UInt64? {
            var v: UInt64 = 0
            var shift: UInt64 = 0
            while i < n, shift < 64 {
                let b = bytes[i]
                i += 1
                v |= UInt64(b & 0x7f) << shift
                if b < 0x80 { return v }
                shift += 7
            }
            return nil
        }
        while i < n {
            guard let tag = varint(), tag >> 3 != 0 else { return false }
            switch tag & 7 {
            case 0: guard varint() != nil else { return false }
            case 1: i += 8
            case 5: i += 4
            case 2:
                guard let length = varint(), length <= UInt64(n - i) else { return false }
                let end = i + Int(length)
                if depth < maxDepth, messages <= maxMessages,
                   walk(UnsafeBufferPointer(rebasing: bytes[i..<end]), depth: depth + 1, maxDepth: maxDepth, messages: &messages) {
                    messages += 1
                }
                i = end
            default: return false
            }
            guard i <= n else { return false }
        }
        return true
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
