import Foundation
import FuzzCommon
import Runtime
@testable import Converters
import Inspect

/// A Keras .h5 file through libhdf5 (in memory) and the variable-length string reader.
runFuzzer { bytes in
    let model = try KerasH5Converter.convert(bytes: bytes, options: ConversionOptions(fileName: "fuzz.h5", limits: fuzzLimits))
    _ = try Scorer(model: model)
}
