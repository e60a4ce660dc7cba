using System.Buffers;
using System.Text.Json;
using HybridServing.Contracts.OpenAi;
using Microsoft.AspNetCore.Http;

namespace HybridServing.MockEngine.Serving;

/// <summary>vLLM's error answers.</summary>
internal static class EngineErrors
{
    /// <summary>The OpenAI envelope: <c>{"error":{"message","type","param","code"}}</c>, code = status.</summary>
    public static IResult OpenAi(int status, string type, string message, string? param = null) =>
        Results.Json(OpenAiErrorResponse.Create(status, type, message, param), OpenAiJson.Options, statusCode: status);

    /// <summary>FastAPI's answer for a route that does not exist.</summary>
    public static IResult NotFound() => Results.Json(new { detail = "Not Found" }, statusCode: 404);

    public static IResult UnknownModel(string model) =>
        OpenAi(404, "NotFoundError", $"The model `{model}` does not exist.", "model");

    /// <summary>Request validation failures: vLLM reports them as 400 with type "Bad Request".</summary>
    public static IResult Validation(string message) => OpenAi(400, "Bad Request", message);
}

/// <summary>Writes JSON bodies with Utf8JsonWriter: exact field order and nulls, no reflection on the hot path.</summary>
internal static class JsonBody
{
    public static byte[] Write(Action<Utf8JsonWriter> write)
    {
        var buffer = new ArrayBufferWriter<byte>(512);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            write(writer);
        }
        return buffer.WrittenSpan.ToArray();
    }

    public static void Usage(Utf8JsonWriter w, int prompt, int completion)
    {
        w.WriteStartObject("usage");
        w.WriteNumber("prompt_tokens", prompt);
        w.WriteNumber("total_tokens", prompt + completion);
        w.WriteNumber("completion_tokens", completion);
        w.WriteNull("prompt_tokens_details");
        w.WriteEndObject();
    }

    /// <summary>vLLM's model permission entry (always the same grants).</summary>
    public static void Permission(Utf8JsonWriter w, long created)
    {
        w.WriteStartArray("permission");
        w.WriteStartObject();
        w.WriteString("id", $"modelperm-{Guid.NewGuid():N}");
        w.WriteString("object", "model_permission");
        w.WriteNumber("created", created);
        w.WriteBoolean("allow_create_engine", false);
        w.WriteBoolean("allow_sampling", true);
        w.WriteBoolean("allow_logprobs", true);
        w.WriteBoolean("allow_search_indices", false);
        w.WriteBoolean("allow_view", true);
        w.WriteBoolean("allow_fine_tuning", false);
        w.WriteString("organization", "*");
        w.WriteNull("group");
        w.WriteBoolean("is_blocking", false);
        w.WriteEndObject();
        w.WriteEndArray();
    }
}
