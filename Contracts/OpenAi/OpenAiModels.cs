using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace HybridServing.Contracts.OpenAi;

/// <summary>OpenAI / vLLM error envelope: <c>{"error":{"message","type","param","code"}}</c>.</summary>
public sealed record OpenAiError(
    [property: JsonPropertyName("message")] string Message,
    [property: JsonPropertyName("type")] string Type,
    [property: JsonPropertyName("param")] string? Param,
    [property: JsonPropertyName("code")] int Code);

public sealed record OpenAiErrorResponse([property: JsonPropertyName("error")] OpenAiError Error)
{
    public static OpenAiErrorResponse Create(int status, string type, string message, string? param = null) =>
        new(new OpenAiError(message, type, param, status));
}

/// <summary>A <c>/v1/models</c> card as vLLM writes it.</summary>
public sealed record ModelCard
{
    [JsonPropertyName("id")] public required string Id { get; init; }
    [JsonPropertyName("object")] public string Object { get; init; } = "model";
    [JsonPropertyName("created")] public long Created { get; init; }
    [JsonPropertyName("owned_by")] public string OwnedBy { get; init; } = "vllm";
    [JsonPropertyName("root")] public string? Root { get; init; }
    [JsonPropertyName("parent")] public string? Parent { get; init; }
    [JsonPropertyName("max_model_len")] public int? MaxModelLen { get; init; }
    [JsonPropertyName("permission")] public IReadOnlyList<JsonElement> Permission { get; init; } = [];
}

public sealed record ModelList
{
    [JsonPropertyName("object")] public string Object { get; init; } = "list";
    [JsonPropertyName("data")] public required IReadOnlyList<ModelCard> Data { get; init; }
}

public static class OpenAiJson
{
    /// <summary>
    /// Options that keep nulls (vLLM writes <c>"parent": null</c>) and escape only what JSON requires, as Python's
    /// <c>json.dumps</c> behind vLLM's FastAPI answers does: <c>'sql-lora'</c>, not <c>\u0027sql-lora\u0027</c>.
    /// </summary>
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };
}
