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
    /// Most opcodes one pickle may execute. Every opcode creates at most one value, so this
    /// bounds the stack, the memo and the containers together: a few megabytes of DUP or
    /// MEMOIZE opcodes cannot fill memory. A torch state dict needs about 30 per tensor.
    public var maxPickleOperations: Int = 1 << 20

    public init() {}
}
