import Foundation
import Runtime

/// One stored array of a model file, as its format declares it. The values are read only when
/// `read()` is called, within the reader limits the description was made with.
public struct DescribedTensor: Sendable {
    /// The name the format gives it: a state-dict key, an HDF5 path, a checkpoint key.
    public var name: String
    /// Safetensors' name of the element type where there is one (`F32`, `BF16`, `I64`), else
    /// the format's own (`F8_E4M3`, `complex64`, `string`).
    public var dtype: String
    public var shape: [Int]
    private let reader: @Sendable () throws -> Tensor

    public init(name: String, dtype: String, shape: [Int], read: @escaping @Sendable () throws -> Tensor) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.reader = read
    }

    /// An array already in memory.
    public init(_ tensor: Tensor) {
        self.init(name: tensor.name, dtype: tensor.dtype.rawValue, shape: tensor.shape, read: { tensor })
    }

    /// The values as a runtime tensor named `name`. Throws for element types clipsafety cannot
    /// compute with and for arrays above the limits.
    public func read() throws -> Tensor {
        var t = try reader()
        t.name = name
        return t
    }

    /// Element count, or nil when the declared shape overflows.
    public var elementCount: Int? {
        shape.reduce(Int?(1)) { acc, d in acc.flatMap { a in d < 0 ? nil : a.multipliedReportingOverflow(by: d).overflow ? nil : a * d } }
    }

    /// True for the float types the runtime computes with.
    public var isFloatingPoint: Bool { DType(rawValue: dtype)?.isFloatingPoint ?? false }
}

/// One layer of a format that stores its architecture (Keras configs, SavedModel Keras
/// metadata), whatever its class.
public struct DescribedLayer: Sendable {
    public var name: String
    /// The class as the config names it (`Dense`, `Conv2D`, `Lambda`).
    public var className: String
    /// Names of the layers feeding this one (empty for inputs and Sequential models, where
    /// each layer takes the previous one).
    public var inbound: [String]
    /// The layer's `config` object, as parsed JSON.
    public var config: JSONValue
    /// Names of this layer's stored weights in `FileDescription.tensors`, in the order the
    /// format assigns them (kernel then bias; mean, variance, count).
    public var weights: [String]
    /// Facts the config does not show directly, e.g. where the weights were found.
    public var notes: [String]

    public init(name: String, className: String, inbound: [String] = [], config: JSONValue = .object([:]),
                weights: [String] = [], notes: [String] = []) {
        self.name = name
        self.className = className
        self.inbound = inbound
        self.config = config
        self.weights = weights
        self.notes = notes
    }
}

/// A string lookup table a graph applies to one input column: the categorical encoding of the
/// autokeras heads, traced through a SavedModel's graph.
public struct DescribedLookup: Sendable, Equatable {
    /// The input column whose formatted value is looked up.
    public var column: Int
    public var keys: [[UInt8]]
    public var values: [Int64]
    public var oovIndex: Int64
    /// The type the input is cast to before formatting (`F32` or `F64`).
    public var keyDType: String

    public init(column: Int, keys: [[UInt8]], values: [Int64], oovIndex: Int64, keyDType: String) {
        self.column = column
        self.keys = keys
        self.values = values
        self.oovIndex = oovIndex
        self.keyDType = keyDType
    }
}

/// What a reader found in a file, in the same terms for every format: no reader knows what a
/// safety head is. `Recogniser` turns a description into a native graph; `inspect` prints it.
public struct FileDescription: Sendable {
    public var format: FileKind
    /// Every stored array, in the format's order.
    public var tensors: [DescribedTensor]
    /// The stored architecture, in config order; empty when the format stores none.
    public var layers: [DescribedLayer]
    /// `Sequential`, `Functional`, … when the format stores a model class.
    public var modelClass: String?
    /// Layer names from input to output when the layers form one chain; nil otherwise.
    public var chain: [String]?
    /// Why the layers do not form one chain, when the format stores layers that do not.
    public var chainProblem: String?
    /// The input width the stored architecture declares, when it does.
    public var inputWidth: Int?
    public var signatures: [ServingSignature]
    public var lookups: [DescribedLookup]
    /// Small facts stored beside the arrays: non-tensor checkpoint entries (`epoch: 7`),
    /// safetensors metadata, HDF5 attributes.
    public var metadata: [(key: String, value: String)]
    /// One-line facts for people about the container.
    public var notes: [String]
    /// How often each op type occurs in a stored graph (SavedModel graphs and functions,
    /// ONNX nodes), most frequent first; empty when the format stores no graph.
    public var opHistogram: [(op: String, count: Int)] = []
    /// The objects of a container that is a tree (HDF5 groups, datasets, links), root first;
    /// empty for other formats and for HDF5 files read as Keras models.
    public var objects: [DescribedObject] = []

    public init(format: FileKind, tensors: [DescribedTensor] = [], layers: [DescribedLayer] = [],
                modelClass: String? = nil, chain: [String]? = nil, chainProblem: String? = nil, inputWidth: Int? = nil,
                signatures: [ServingSignature] = [], lookups: [DescribedLookup] = [],
                metadata: [(key: String, value: String)] = [], notes: [String] = []) {
        self.format = format
        self.tensors = tensors
        self.layers = layers
        self.modelClass = modelClass
        self.chain = chain
        self.chainProblem = chainProblem
        self.inputWidth = inputWidth
        self.signatures = signatures
        self.lookups = lookups
        self.metadata = metadata
        self.notes = notes
    }

    /// The tensor called `name`.
    public func tensor(_ name: String) -> DescribedTensor? { tensors.first { $0.name == name } }
}

/// One object of a hierarchical container (an HDF5 group, dataset or link), as its headers
/// declare it: nothing of a dataset's data is read.
public struct DescribedObject: Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable { case group, dataset, link, other }

    /// Absolute path (`/`, `/data/x`).
    public var path: String
    public var kind: Kind
    /// For datasets: element type (`F32`, `I64`, `string`, `compound`, …) and shape.
    public var dtype: String?
    public var shape: [Int]?
    /// Chunk shape of a chunked dataset; nil for contiguous and compact ones.
    public var chunks: [Int]?
    /// Filter names in pipeline order (`deflate`, `shuffle`, `fletcher32`, `filter 32001`).
    public var filters: [String]
    public var attributes: [DescribedAttribute]
    /// Facts for people: a link's kind and target, storage outside the file, what was not read.
    public var notes: [String]

    public init(path: String, kind: Kind, dtype: String? = nil, shape: [Int]? = nil, chunks: [Int]? = nil,
                filters: [String] = [], attributes: [DescribedAttribute] = [], notes: [String] = []) {
        self.path = path
        self.kind = kind
        self.dtype = dtype
        self.shape = shape
        self.chunks = chunks
        self.filters = filters
        self.attributes = attributes
        self.notes = notes
    }
}

/// An attribute of a `DescribedObject`: its type and shape, and its value as short text when
/// it is a small string or number array.
public struct DescribedAttribute: Sendable, Equatable {
    public var name: String
    public var dtype: String
    public var shape: [Int]
    public var value: String?

    public init(name: String, dtype: String, shape: [Int], value: String?) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.value = value
    }
}
