import Foundation
import FuzzCommon
import Runtime
@testable import Converters
import Inspect

/// A Keras .h5 file through libhdf5 (in memory) and the variable-length string reader.
runFuzzer { bytes in
    let model = try ModelLoader.convert(bytes: bytes, options: ConversionOptions(fileName: "fuzz.h5", limits: fuzzLimits)).model
    _ = try Scorer(model: model)
}
