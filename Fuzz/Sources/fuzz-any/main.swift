import Foundation
import FuzzCommon
import Runtime
@testable import Converters
import Inspect

/// Any file, identified from its bytes and converted as `convert` would, and scanned as `scan` would.
runFuzzer { bytes in
    _ = ModelScanner.scan(bytes: bytes, path: "fuzz.bin", limits: fuzzLimits)
    let model = try ModelLoader.convert(bytes: bytes, options: ConversionOptions(fileName: "fuzz.bin", limits: fuzzLimits)).model
    _ = try Scorer(model: model)
    _ = try model.serialized()
}
