/// Caps every reader applies before allocating from a size the input declares
/// (README, "Limits"). Defaults fit every upstream head with a wide margin.
public struct ReaderLimits: Sendable {
    /// Largest input file read, in bytes.
    public var maxFileBytes: Int = 1 << 30
    /// Largest total of uncompressed bytes read from one archive (zip bombs stop here).
    public var maxUncompressedBytes: Int = 256 << 20
    /// Largest element count of one tensor.
    public var maxTensorElements: Int = 64 << 20
    /// Deepest nesting a recursive structure (pickle, protobuf, JSON) may have.
    public var maxDepth: Int = 100

    public init() {}
}
