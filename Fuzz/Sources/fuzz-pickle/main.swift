import Foundation
import FuzzCommon
import Runtime
@testable import Converters
import Inspect

/// Legacy torch files are a run of pickles: any bytes go through the restricted unpickler
/// (first as one pickle, then as a legacy checkpoint), and through `scan`'s symbolic walker.
runFuzzer { bytes in
    _ = PickleWalker.scan(bytes, limits: fuzzLimits)
    _ = try? TorchPickleReader.read(bytes: bytes, limits: fuzzLimits)
    _ = try TorchCheckpoint(legacyBytes: bytes, limits: fuzzLimits)
}
