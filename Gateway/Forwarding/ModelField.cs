using System.Text.Json;

namespace HybridServing.Gateway.Forwarding;

/// <summary>The <c>model</c> of an inference request, or a 400 message naming what is wrong.</summary>
/// <param name="ModelTokenStart">Byte offset of the model's string token (with its quotes), for rewriting an alias.</param>
/// <param name="User">The top-level OpenAI <c>user</c> field when it is a string (a sticky key for canaries).</param>
internal readonly record struct ModelFieldResult(string? Model, string? Error, string? Param, int ModelTokenStart = 0, int ModelTokenLength = 0, string? User = null)
{
    public bool IsValid => Model is not null;
}

/// <summary>
/// Takes <c>model</c> out of a JSON body with <see cref="Utf8JsonReader"/>, without building a DOM,
/// and validates the whole document on the way: the engine must never be the first to find it broken.
/// A second <c>model</c> is rejected, because routing on one and the engine reading the other would
/// let a request reach an adapter its tenant may not use.
/// </summary>
internal static class ModelField
{
    public const int MaxModelLength = 512;
    private static ReadOnlySpan<byte> ModelName => "model"u8;

    /// <summary>JSON kinds a checked field may have.</summary>
    [Flags]
    private enum Kind { String = 1, Array = 2, Object = 4, Boolean = 8, Integer = 16, Number = 32, Null = 64 }

    /// <summary>
    /// Top-level fields whose type the gateway checks as OpenAI's API does, so a request of the wrong shape is
    /// answered here and never forwarded. Values (ranges, roles, ...) are the engine's to judge.
    /// </summary>
    private static readonly (byte[] Name, Kind Kinds)[] Typed =
    [
        ("messages"u8.ToArray(), Kind.Array),
        ("prompt"u8.ToArray(), Kind.String | Kind.Array),
        ("stream"u8.ToArray(), Kind.Boolean | Kind.Null),
        ("stream_options"u8.ToArray(), Kind.Object | Kind.Null),
        ("max_tokens"u8.ToArray(), Kind.Integer | Kind.Null),
        ("max_completion_tokens"u8.ToArray(), Kind.Integer | Kind.Null),
        ("n"u8.ToArray(), Kind.Integer | Kind.Null),
        ("temperature"u8.ToArray(), Kind.Number | Kind.Null),
        ("top_p"u8.ToArray(), Kind.Number | Kind.Null),
        ("stop"u8.ToArray(), Kind.String | Kind.Array | Kind.Null),
        ("user"u8.ToArray(), Kind.String | Kind.Null),
    ];

    /// <param name="required">A field the endpoint cannot do without (<c>messages</c> for chat), or null.</param>
    /// <param name="alternative">A field that may stand in for <paramref name="required"/> (<c>prompt_embeds</c>).</param>
    public static ModelFieldResult Read(ReadOnlySpan<byte> body, string? required = null, string? alternative = null)
    {
        if (body.IsEmpty) return Invalid("The request body is empty; send a JSON object with a 'model' field.");
        // The reader only checks UTF-8 inside strings it decodes; the engine would choke on the rest.
        if (!System.Text.Unicode.Utf8.IsValid(body)) return Invalid("The request body is not valid UTF-8 JSON.");
        var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = 64 });
        string? model = null;
        string? user = null;
        int tokenStart = 0, tokenLength = 0;
        string? typeError = null, typeParam = null;
        var seen = false;
        var requiredSeen = required is null;
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
                return Invalid($"The request body must be a JSON object, not {Describe(ref reader)}.");
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var isModel = reader.ValueTextEquals(ModelName);
                var isUser = reader.ValueTextEquals("user"u8);
                if (!requiredSeen && (reader.ValueTextEquals(required) || (alternative is not null && reader.ValueTextEquals(alternative)))) requiredSeen = true;
                var typed = TypedField(ref reader);
                reader.Read();
                if (typed >= 0 && typeError is null && !Fits(ref reader, Typed[typed].Kinds))
                {
                    typeParam = System.Text.Encoding.UTF8.GetString(Typed[typed].Name);
                    typeError = $"Invalid type for '{typeParam}': expected {Expected(Typed[typed].Kinds)}, but got {Describe(ref reader)}.";
                }
                if (isModel)
                {
                    if (seen) return Invalid("The 'model' field appears more than once; send it once.", "model");
                    seen = true;
                    if (reader.TokenType == JsonTokenType.String)
                    {
                        model = reader.GetString();
                        tokenStart = (int)reader.TokenStartIndex;
                        tokenLength = (int)(reader.BytesConsumed - reader.TokenStartIndex);
                    }
                    else (typeError, typeParam) = ($"Invalid type for 'model': expected a string, but got {Describe(ref reader)}.", "model");
                }
                else if (isUser && reader.TokenType == JsonTokenType.String)
                {
                    try { user = reader.GetString(); }
                    catch (InvalidOperationException) { user = null; }
                }
                reader.Skip();
            }
            // Reading past the end object proves nothing trails the document.
            if (reader.Read()) return Invalid("The request body has content after the JSON object.");
        }
        catch (JsonException ex)
        {
            return Invalid($"The request body is not valid JSON: {ex.Message}");
        }
        catch (InvalidOperationException)
        {
            // GetString on an escaped lone surrogate, e.g. "\ud800".
            return Invalid("The 'model' field is not a valid Unicode string.", "model");
        }
        if (typeError is not null) return Invalid(typeError, typeParam);
        if (!seen) return Invalid("Missing required parameter: 'model'.", "model");
        if (!requiredSeen) return Invalid($"Missing required parameter: '{required}'.", required);
        if (string.IsNullOrWhiteSpace(model)) return Invalid("'model' must be a non-empty string naming a model from /v1/models.", "model");
        if (model.Length > MaxModelLength) return Invalid($"'model' is longer than {MaxModelLength} characters.", "model");
        return new ModelFieldResult(model, null, null, tokenStart, tokenLength, user);
    }

    private static ModelFieldResult Invalid(string message, string? param = null) => new(null, message, param);

    private static int TypedField(ref Utf8JsonReader reader)
    {
        for (var i = 0; i < Typed.Length; i++)
            if (reader.ValueTextEquals(Typed[i].Name)) return i;
        return -1;
    }

    private static bool Fits(ref Utf8JsonReader reader, Kind kinds) => reader.TokenType switch
    {
        JsonTokenType.String => kinds.HasFlag(Kind.String),
        JsonTokenType.StartArray => kinds.HasFlag(Kind.Array),
        JsonTokenType.StartObject => kinds.HasFlag(Kind.Object),
        JsonTokenType.True or JsonTokenType.False => kinds.HasFlag(Kind.Boolean),
        JsonTokenType.Null => kinds.HasFlag(Kind.Null),
        // 3.0 and 3e0 are integers to OpenAI's (and vLLM's) validation; 3.5 is not.
        JsonTokenType.Number => kinds.HasFlag(Kind.Number) || (kinds.HasFlag(Kind.Integer) && IsIntegral(ref reader)),
        _ => false,
    };

    private static bool IsIntegral(ref Utf8JsonReader reader) =>
        reader.TryGetInt64(out _) || (reader.TryGetDouble(out var d) && double.IsFinite(d) && d == Math.Floor(d) && Math.Abs(d) < 9.2e18);

    private static string Expected(Kind kinds)
    {
        var names = new List<string>();
        if (kinds.HasFlag(Kind.String)) names.Add("a string");
        if (kinds.HasFlag(Kind.Array)) names.Add("an array");
        if (kinds.HasFlag(Kind.Object)) names.Add("an object");
        if (kinds.HasFlag(Kind.Boolean)) names.Add("a boolean");
        if (kinds.HasFlag(Kind.Integer)) names.Add("an integer");
        if (kinds.HasFlag(Kind.Number)) names.Add("a number");
        if (kinds.HasFlag(Kind.Null)) names.Add("null");
        return names.Count == 1 ? names[0] : string.Join(", ", names[..^1]) + " or " + names[^1];
    }

    private static string Describe(ref Utf8JsonReader reader) => reader.TokenType switch
    {
        JsonTokenType.StartArray => "an array",
        JsonTokenType.StartObject => "an object",
        JsonTokenType.String => "a string",
        JsonTokenType.Number => IsIntegral(ref reader) ? "a number" : "a decimal number",
        JsonTokenType.True or JsonTokenType.False => "a boolean",
        JsonTokenType.Null => "null",
        _ => "nothing",
    };
}
