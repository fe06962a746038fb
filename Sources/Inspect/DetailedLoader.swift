import Foundation
import Runtime
import Converters

extension ModelLoader {
    /// `convert`, plus what the converter knows about the source format beyond the native
    /// model (layer names and classes, dropped layers, the serving signature). Formats whose
    /// converter reports nothing extra give nil details; native files have none.
    public static func convertWithDetails(bytes: Data, kind: FileKind, options: ConversionOptions) throws -> (model: NativeModel, details: SourceDetails?) {
        switch kind {
        case .savedModelZip:
            let r = try SavedModelConverter.convertWithDetails(bytes: bytes, options: options)
            return (r.model, r.details)
        case .torchZip, .torchLegacy:
            let r = try TorchConverter.convertWithDetails(bytes: bytes, options: options)
            return (r.model, r.details)
        case .npy:
            let r = try NpyPromptConverter.convertWithDetails(bytes: bytes, options: options)
            return (r.model, r.details)
        case .kerasH5:
            let r = try KerasH5Converter.convertWithDetails(bytes: bytes, options: options)
            return (r.model, r.details)
        case .kerasV3:
            let r = try KerasV3Converter.convertWithDetails(bytes: bytes, options: options)
            return (r.model, r.details)
        default:
            return (try convert(bytes: bytes, options: options), nil)
        }
    }
}
