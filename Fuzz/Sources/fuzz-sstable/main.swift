import Foundation
import FuzzCommon
import Runtime
@testable import Converters
import Inspect

/// A LevelDB table, then the same bytes as a tensor bundle index over itself as data shard.
runFuzzer { bytes in
    _ = try SSTableReader(bytes: bytes, limits: fuzzLimits)
    let bundle = try TensorBundleReader(index: bytes, shards: [bytes], limits: fuzzLimits)
    for e in bundle.entries { _ = try? bundle.tensor(e.name, as: "t") }
}
