import Foundation
import Runtime
import Converters

/// Opens any model file clipsafety reads (native or upstream) as a native model, converting
/// upstream files in memory. Every command that takes a model goes through here.
public enum ModelLoader {
    /// Reads `path`, identifies it from its bytes and converts it when needed.
    public static func load(path: String, options: ConversionOptions? = nil) throws -> NativeModel {
        let bytes = try MappedFile.map(path)
        let opts = options ?? ConversionOptions(fileName: (path as NSString).lastPathComponent)
        guard bytes.count <= opts.limits.maxFileBytes else {
            throw ClipSafetyError.limitExceeded("file of \(bytes.count) bytes exceeds the limit of \(opts.limits.maxFileBytes) (raise with --max-file-bytes)")
        }
        return try convert(bytes: bytes, options: opts)
    }

    /// Native files obey the limits converted ones do: scoring widens every tensor to Float32
    /// in memory, so a native file's tensors are capped like an archive's uncompressed bytes.
    static func checkLimits(_ tensors: [Tensor], limits: ReaderLimits) throws {
        var total = 0
        for t in tensors {
            let n = t.elementCount  // safetensors checked shape × dtype against the bytes present
            guard n <= limits.maxTensorElements else {
                throw ClipSafetyError.limitExceeded("tensor '\(t.name)' has \(n) elements, above the limit of \(limits.maxTensorElements) (raise with --max-tensor-elements)")
            }
            total += n * MemoryLayout<Float>.size
            guard total <= limits.maxUncompressedBytes else {
                throw ClipSafetyError.limitExceeded("tensors up to '\(t.name)' take more than \(limits.maxUncompressedBytes) bytes as Float32 (raise with --max-uncompressed-bytes)")
            }
        }
    }

    /// Converts bytes of any supported kind to a native model.
    public static func convert(bytes: Data, options: ConversionOptions) throws -> NativeModel {
        let kind = try FileSniffer.identify(bytes, limits: options.limits)
        switch kind {
        case .native:
            var model = try NativeModel(bytes: bytes)
            try checkLimits(model.tensors, limits: options.limits)
            options.applyOverrides(to: &model.card)
            return model
        case .savedModelZip: return try SavedModelConverter.convert(bytes: bytes, options: options)
        case .safetensors:
            throw ClipSafetyError.unsupported("a safetensors file without clipsafety metadata: it holds tensors but no graph, so it cannot be scored")
        case .torchZip, .torchLegacy: return try TorchConverter.convert(bytes: bytes, options: options)
        case .npy: return try NpyPromptConverter.convert(bytes: bytes, options: options)
        case .kerasH5: return try KerasH5Converter.convert(bytes: bytes, options: options)
        case .kerasV3: return try KerasV3Converter.convert(bytes: bytes, options: options)
        case .npz:
            throw ClipSafetyError.unsupported("an .npz archive holds arrays (reference data), not a model")
        case .zip:
            throw ClipSafetyError.unsupported("a zip archive that is neither a SavedModel, a .keras file, a torch checkpoint nor an .npz")
        }
    }
}
