import Foundation
import FuzzCommon
import Runtime
@testable import Converters
import Inspect

runFuzzer { bytes in
    let zip = try ZipArchive(bytes: bytes, limits: fuzzLimits)
    for entry in zip.entries { _ = try? zip.read(entry) }
    _ = try NpzArchive.read(bytes: bytes, limits: fuzzLimits)
}
