import Foundation
import Runtime

/// One layer of the source file's own architecture, as that format names it. The native graph
/// keeps only ops and tensors; this keeps what a person recognises from the original (Keras
/// layer names and classes, layers with no native op such as Dropout) for `inspect`.
public struct SourceLayer: Sendable, Equatable, Codable {
    /// The layer's name in the source (`dense_1`, `layers.2`); empty when the format has none.
    public var name: String
    /// Its class in the source format (`Dense`, `Dropout`, `Linear`, `MultiCategoryEncoding`).
    public var className: String
    /// How many consecutive native graph ops this layer became (0: nothing at inference).
    public var opCount: Int
    /// Facts the graph does not carry, e.g. `rate 0.5`.
    public var notes: [String]

    public init(name: String, className: String, opCount: Int, notes: [String] = []) {
        self.name = name
        self.className = className
        self.opCount = opCount
        self.notes = notes
    }

    enum CodingKeys: String, CodingKey {
        case name
        case className = "class"
        case opCount = "op_count"
        case notes
    }
}

/// The serving signature of a SavedModel: what TensorFlow Serving or `model.signatures` sees.
public struct ServingSignature: Sendable, Equatable, Codable {
    /// Signature key, e.g. `serving_default`.
    public var key: String
    /// The first input and output by name (the only ones of a one-input, one-output head).
    public var input: Port
    public var output: Port
    /// Every input and output, by name.
    public var inputs: [Port]
    public var outputs: [Port]
    /// The signature's method name (`tensorflow/serving/predict`), when the format stores one.
    public var method: String?

    /// One input or output of the signature.
    public struct Port: Sendable, Equatable, Codable {
        /// Name in the signature map (`input_1`).
        public var name: String
        /// Graph tensor it binds to (`serving_default_input_1:0`).
        public var tensor: String
        /// TensorFlow dtype name (`float64`).
        public var dtype: String
        /// Dimensions; nil for an unknown one (the batch), whole list nil for unknown rank.
        public var shape: [Int?]?

        public init(name: String, tensor: String, dtype: String, shape: [Int?]?) {
            self.name = name
            self.tensor = tensor
            self.dtype = dtype
            self.shape = shape
        }

        enum CodingKeys: String, CodingKey { case name, tensor, dtype, shape }

        /// Every key, `shape` as null for an unknown rank (docs/INSPECT-JSON.md).
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(name, forKey: .name)
            try c.encode(tensor, forKey: .tensor)
            try c.encode(dtype, forKey: .dtype)
            try c.encode(shape, forKey: .shape)
        }
    }

    public init(key: String, input: Port, output: Port) {
        self.key = key
        self.input = input
        self.output = output
        inputs = [input]
        outputs = [output]
        method = nil
    }

    enum CodingKeys: String, CodingKey { case key, input, output, inputs, outputs, method }

    /// Every key, `method` as null when unknown (docs/INSPECT-JSON.md).
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(key, forKey: .key)
        try c.encode(input, forKey: .input)
        try c.encode(output, forKey: .output)
        try c.encode(inputs, forKey: .inputs)
        try c.encode(outputs, forKey: .outputs)
        try c.encode(method, forKey: .method)
    }
}

/// What a converter learned about the source file beyond the native model: its layer list,
/// the SavedModel serving signature, and free-form facts (container, how the head was
/// recognised). Format-neutral, so `inspect` shows every format the same way.
public struct SourceDetails: Sendable, Equatable {
    public var layers: [SourceLayer]
    public var signature: ServingSignature?
    /// One-line facts for people, e.g. `recognised as the upstream PyTorch port from its keys`.
    public var notes: [String]

    public init(layers: [SourceLayer] = [], signature: ServingSignature? = nil, notes: [String] = []) {
        self.layers = layers
        self.signature = signature
        self.notes = notes
    }
}
