import Foundation
import FuzzCommon
import Runtime
@testable import Converters
import Inspect

runFuzzer { bytes in
    let file = try SafetensorsFile(bytes: bytes)
    _ = try file.serialized()
    let model = try NativeModel(bytes: bytes)
    _ = try Scorer(model: model)
}
