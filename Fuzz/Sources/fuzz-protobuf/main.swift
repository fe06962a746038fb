import Foundation
import FuzzCommon
import Runtime
@testable import Converters
import Inspect

/// The first byte chooses the message: 0 keras_metadata.pb (and the Keras config JSON in it),
/// 1 saved_model.pb (and the vocabulary trace through its graph), 2 a bundle entry, 3 an ONNX
/// model (described, then read as a chain).
runFuzzer { bytes in
    guard let selector = bytes.first else { return }
    let message = bytes.dropFirst()
    switch selector % 4 {
    case 0: _ = try SavedModelKerasConfig(metadata: message, limits: fuzzLimits)
    case 1: _ = try SavedModelVocabularies(savedModel: message, limits: fuzzLimits)
    case 3:
        _ = try ONNXReader.describe(Data(message), fuzzLimits)
        _ = try ONNXImport.convert(bytes: Data(message), options: ConversionOptions(fileName: "fuzz.onnx", stated: StatedMeaning(task: .unknown), limits: fuzzLimits))
    default: _ = try TensorBundleReader.entry(name: "t", value: message, limits: fuzzLimits)
    }
}
