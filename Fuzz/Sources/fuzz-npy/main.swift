import Foundation
import FuzzCommon
import Runtime
@testable import Converters
import Inspect

runFuzzer { bytes in
    let array = try NpyArray(bytes: bytes)
    _ = array.serialized()
    let model = try ModelLoader.convert(bytes: bytes, options: ConversionOptions(fileName: "fuzz.npy", limits: fuzzLimits)).model
    _ = try Scorer(model: model)
}
