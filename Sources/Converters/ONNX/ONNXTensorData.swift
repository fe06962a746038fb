import Foundation
import Runtime

/// The data of an ONNX `TensorProto`: declared sizes checked against the limits and against
/// the bytes actually present, then read as a native tensor.
enum ONNXTensorData {
    /// Checks `tensor` and returns the bytes its data takes. Refuses external data (a path the
    /// file names), negative or overflowing dimensions, element counts above the limit, and
    /// data whose size is not what the shape declares.
    static func check(_ tensor: Onnx_TensorProto, limits: ReaderLimits) throws -> Int {
        let name = tensor.name
        if tensor.dataLocation == .external || !tensor.externalData.isEmpty {
            let location = tensor.externalData.first { $0.key == "location" }?.value ?? "?"
            throw ClipSafetyError.unsafe("ONNX: initializer '\(name)' keeps its data in an external file ('\(location)'); clipsafety opens no file a model names")
        }
        let count = try elementCount(tensor, limits: limits)
        let code = tensor.dataType
        if code == 8 {  // STRING
            guard tensor.stringData.count == count else {
                throw ClipSafetyError.malformed("ONNX: string tensor '\(name)' declares \(count) elements and holds \(tensor.stringData.count)")
            }
            return tensor.stringData.reduce(0) { $0 + $1.count }
        }
        guard let size = ONNXDataType.byteSize(code) else {
            // Sub-byte and unknown types: only raw data, at most one byte per element.
            guard tensor.rawData.count <= count else {
                throw ClipSafetyError.malformed("ONNX: tensor '\(name)' of \(ONNXDataType.name(code)) holds more bytes than elements")
            }
            return tensor.rawData.count
        }
        let expected = count * size
        if tensor.hasRawData {
            guard tensor.rawData.count == expected else {
                throw ClipSafetyError.malformed("ONNX: tensor '\(name)' declares \(tensor.dims) \(ONNXDataType.name(code)) (\(expected) bytes) and holds \(tensor.rawData.count)")
            }
        } else {
            let present = typedCount(tensor)
            guard present == count * (code == 14 || code == 15 ? 2 : 1) else {
                throw ClipSafetyError.malformed("ONNX: tensor '\(name)' declares \(count) elements of \(ONNXDataType.name(code)) and holds \(present)")
            }
        }
        return expected
    }

    /// The product of the dims, checked for sign, overflow and the element limit.
    static func elementCount(_ tensor: Onnx_TensorProto, limits: ReaderLimits) throws -> Int {
        var count = 1
        for d in tensor.dims {
            guard d >= 0, d <= Int64(Int.max) else { throw ClipSafetyError.malformed("ONNX: tensor '\(tensor.name)' has dimension \(d)") }
            let (product, overflow) = count.multipliedReportingOverflow(by: Int(d))
            guard !overflow, product <= limits.maxTensorElements else {
                throw ClipSafetyError.limitExceeded("ONNX: tensor '\(tensor.name)' declares \(tensor.dims) elements, above the limit of \(limits.maxTensorElements) (raise with --max-tensor-elements)")
            }
            count = product
        }
        return count
    }

    /// Values in the typed field the element type uses.
    static func typedCount(_ t: Onnx_TensorProto) -> Int {
        switch t.dataType {
        case 1, 14: return t.floatData.count
        case 11, 15: return t.doubleData.count
        case 7: return t.int64Data.count
        case 12, 13: return t.uint64Data.count
        default: return t.int32Data.count
        }
    }

    /// Bytes of data present (for descriptions).
    static func storedBytes(_ t: Onnx_TensorProto) -> Int {
        if t.hasRawData { return t.rawData.count }
        if t.dataType == 8 { return t.stringData.reduce(0) { $0 + $1.count } }
        return typedCount(t) * (ONNXDataType.byteSize(t.dataType).map { t.dataType == 14 ? 4 : t.dataType == 15 ? 8 : $0 } ?? 1)
    }

    /// Safetensors' name of the dtype where clipsafety has one, else ONNX's name.
    static func dtypeName(_ code: Int32) -> String {
        ONNXDataType.native(code)?.rawValue ?? ONNXDataType.name(code)
    }

    /// The tensor's values as a native tensor (little-endian bytes). Throws for element types
    /// clipsafety does not compute with.
    static func tensor(_ t: Onnx_TensorProto, limits: ReaderLimits) throws -> Tensor {
        _ = try check(t, limits: limits)
        guard let dtype = ONNXDataType.native(t.dataType) else {
            throw ClipSafetyError.unsupported("ONNX: tensor '\(t.name)' holds \(ONNXDataType.name(t.dataType)), which clipsafety does not compute with")
        }
        let shape = t.dims.map { Int($0) }
        if t.hasRawData { return try Tensor(name: t.name, dtype: dtype, shape: shape, data: t.rawData) }
        var data = Data(capacity: (checkedByteCount(shape: shape, dtype: dtype)?.bytes ?? 0))
        func append<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
        switch dtype {
        case .f32: t.floatData.forEach { append($0.bitPattern) }
        case .f64: t.doubleData.forEach { append($0.bitPattern) }
        case .i64: t.int64Data.forEach { append($0) }
        case .i32: t.int32Data.forEach { append($0) }
        case .i16, .f16, .bf16: t.int32Data.forEach { append(UInt16(truncatingIfNeeded: $0)) }
        case .i8, .u8, .bool: t.int32Data.forEach { append(UInt8(truncatingIfNeeded: $0)) }
        }
        return try Tensor(name: t.name, dtype: dtype, shape: shape, data: data)
    }
}
