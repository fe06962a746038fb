import Foundation
import Runtime

/// `.npy` arrays and `.npz` archives of them, described as tensors named by the file or the
/// member. Object arrays are refused by `NpyArray` (loading them would unpickle).
enum NumPyReader {
    static let npy = FormatReader(kind: .npy, matches: { $0.starts(with: [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]) },
                                  describe: describeNpy)
    static let npz = FormatReader(kind: .npz, matches: { probe in
        guard let names = probe.zipMembers, !names.isEmpty else { return false }
        return names.allSatisfy { $0.hasSuffix(".npy") }
    }, describe: describeNpz)

    static func describeNpy(_ bytes: Data, limits: ReaderLimits) throws -> FileDescription {
        // Header only: the element limit applies when the values are read, so that a large
        // embedding shard can be described.
        let array = try NpyArray(bytes: bytes)
        return FileDescription(format: .npy, tensors: [try tensor("array", array, limits: limits)])
    }

    static func describeNpz(_ bytes: Data, limits: ReaderLimits) throws -> FileDescription {
        let arrays = try NpzArchive.read(bytes: bytes, limits: limits)
        return FileDescription(format: .npz, tensors: try arrays.keys.sorted().map { try tensor($0, arrays[$0]!, limits: limits) })
    }

    /// Refuses arrays above `limits.maxTensorElements`.
    static func checkElements(_ array: NpyArray, limits: ReaderLimits) throws {
        guard array.elementCount <= limits.maxTensorElements else {
            throw ClipSafetyError.limitExceeded("npy: \(array.elementCount) elements, above the limit of \(limits.maxTensorElements) (raise with --max-tensor-elements)")
        }
    }

    static func tensor(_ name: String, _ array: NpyArray, limits: ReaderLimits) throws -> DescribedTensor {
        let dtype = dtype(of: array.dtype)
        return DescribedTensor(name: name, dtype: dtype.rawValue, shape: array.shape) {
            try checkElements(array, limits: limits)
            return try Tensor(name: name, dtype: dtype, shape: array.shape, data: Data(array.data))
        }
    }

    /// The safetensors dtype of an `.npy` element type.
    static func dtype(of npy: NpyDType) -> DType {
        switch npy {
        case .f2: return .f16
        case .f4: return .f32
        case .f8: return .f64
        case .i8: return .i64
        case .u1: return .u8
        case .b1: return .bool
        }
    }
}
