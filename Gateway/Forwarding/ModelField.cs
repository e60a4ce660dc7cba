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

    public static ModelFieldResult Read(ReadOnlySpan<byte> body)
    {
        if (body.IsEmpty) return Invalid("The request body is empty; send a JSON object with a 'model' field.");
        // The reader only checks UTF-8 inside strings it decodes; the engine would choke on the rest.
        if (!System.Text.Unicode.Utf8.IsValid(body)) return Invalid("The request body is not valid UTF-8 JSON.");
        var reader = new Utf8JsonReader(body, new JsonReaderOptions { MaxDepth = 64 });
        string? model = null;
        string? user = null;
        int tokenStart = 0, tokenLength = 0;
        string? typeError = null;
        var seen = false;
        try
        {
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
                return Invalid($"The request body must be a JSON object, not {Describe(reader.TokenType)}.");
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var isModel = reader.ValueTextEquals(ModelName);
                var isUser = reader.ValueTextEquals("user"u8);
                reader.Read();
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
                    else typeError = $"Invalid type for 'model': expected a string, but got {Describe(reader.TokenType)}.";
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
        if (typeError is not null) return Invalid(typeError, "model");
        if (!seen) return Invalid("Missing required parameter: 'model'.", "model");
        if (string.IsNullOrWhiteSpace(model)) return Invalid("'model' must be a non-empty string naming a model from /v1/models.", "model");
        if (model.Length > MaxModelLength) return Invalid($"'model' is longer than {MaxModelLength} characters.", "model");
        return new ModelFieldResult(model, null, null, tokenStart, tokenLength, user);
    }

    private static ModelFieldResult Invalid(string message, string? param = null) => new(null, message, param);

    private static string Describe(JsonTokenType token) => token switch
    {
        JsonTokenType.StartArray => "an array",
        JsonTokenType.StartObject => "an object",
        JsonTokenType.String => "a string",
        JsonTokenType.Number => "a number",
        JsonTokenType.True or JsonTokenType.False => "a boolean",
        JsonTokenType.Null => "null",
        _ => "nothing",
    };
}
