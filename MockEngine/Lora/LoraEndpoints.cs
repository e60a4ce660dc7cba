using System.Text.Json;
using HybridServing.MockEngine.Serving;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace HybridServing.MockEngine.Lora;

/// <summary><c>POST /v1/load_lora_adapter</c> and <c>/v1/unload_lora_adapter</c>, with vLLM's answers.</summary>
internal sealed partial class LoraEndpoints(
    MockEngineOptions options,
    LoraAdapterRegistry registry,
    ILogger<LoraEndpoints> logger)
{
    private const int MaxBodyBytes = 1 << 20;

    public async Task<IResult> LoadAsync(HttpContext context)
    {
        try
        {
            return await LoadCoreAsync(context);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The caller went away mid-load; the name was not registered.
            return Results.Empty;
        }
    }

    private async Task<IResult> LoadCoreAsync(HttpContext context)
    {
        var (body, error) = await ReadJsonAsync(context);
        if (error is not null) return error;
        using (body)
        {
            var root = body!.RootElement;
            var missing = new List<string>();
            var name = StringField(root, "lora_name", missing, out var nameError);
            var path = StringField(root, "lora_path", missing, out var pathError);
            var typeError = nameError ?? pathError;
            if (typeError is not null) return EngineErrors.Validation(typeError);
            if (missing.Count > 0) return EngineErrors.Validation(MissingMessage(missing));
            var inplace = root.TryGetProperty("load_inplace", out var li) && li.ValueKind == JsonValueKind.True;

            using var activity = MockEngineTelemetry.Source.StartActivity("load_lora_adapter");
            activity?.SetTag("lora.name", name);
            var result = await registry.LoadAsync(name!, path!, inplace, baseModelName: null, takeLoadTime: !options.ZeroLatency, context.RequestAborted);
            MockEngineTelemetry.AdapterLoads.Add(1, new KeyValuePair<string, object?>("outcome", result.Success ? "loaded" : "rejected"));
            activity?.SetTag("http.response.status_code", result.Status);
            if (!result.Success)
            {
                LogLoadRejected(logger, name!, result.Status, result.Message);
                return EngineErrors.OpenAi(result.Status, result.ErrorType!, result.Message);
            }
            LogLoaded(logger, name!, path!, result.Load?.Seconds ?? 0);
            return Results.Text(result.Message, "text/plain", statusCode: 200);
        }
    }

    public async Task<IResult> UnloadAsync(HttpContext context)
    {
        var (body, error) = await ReadJsonAsync(context);
        if (error is not null) return error;
        using (body)
        {
            var missing = new List<string>();
            var name = StringField(body!.RootElement, "lora_name", missing, out var typeError);
            if (typeError is not null) return EngineErrors.Validation(typeError);
            var result = registry.Unload(name);
            if (!result.Success) return EngineErrors.OpenAi(result.Status, result.ErrorType!, result.Message);
            LogUnloaded(logger, name!);
            return Results.Text(result.Message, "text/plain", statusCode: 200);
        }
    }

    private static async Task<(JsonDocument? Body, IResult? Error)> ReadJsonAsync(HttpContext context)
    {
        if (!context.Request.HasJsonContentType())
            return (null, EngineErrors.Validation($"Unsupported Content-Type '{context.Request.ContentType}': the body must be application/json."));
        if (context.Request.ContentLength > MaxBodyBytes)
            return (null, EngineErrors.Validation($"Request body exceeds {MaxBodyBytes} bytes."));
        try
        {
            var doc = await JsonDocument.ParseAsync(context.Request.Body, default, context.RequestAborted);
            if (doc.RootElement.ValueKind == JsonValueKind.Object) return (doc, null);
            doc.Dispose();
            return (null, EngineErrors.Validation("body: Input should be a valid dictionary or object to extract fields from"));
        }
        catch (JsonException e)
        {
            return (null, EngineErrors.Validation($"JSON decode error: {e.Message}"));
        }
    }

    private static string? StringField(JsonElement root, string field, List<string> missing, out string? typeError)
    {
        typeError = null;
        if (!root.TryGetProperty(field, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            missing.Add(field);
            return null;
        }
        if (value.ValueKind != JsonValueKind.String)
        {
            typeError = $"1 validation error: body.{field}: Input should be a valid string";
            return null;
        }
        return value.GetString();
    }

    /// <summary>pydantic's wording, which vLLM passes through as the message.</summary>
    private static string MissingMessage(List<string> missing) =>
        $"{missing.Count} validation error{(missing.Count > 1 ? "s" : "")}: "
        + string.Join("; ", missing.Select(f => $"body.{f}: Field required"));

    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "Loaded LoRA adapter {Name} from {Path} (modelled load {Seconds:F3} s)")]
    private static partial void LogLoaded(ILogger logger, string name, string path, double seconds);

    [LoggerMessage(EventId = 101, Level = LogLevel.Warning, Message = "Rejected LoRA adapter {Name} with {Status}: {Reason}")]
    private static partial void LogLoadRejected(ILogger logger, string name, int status, string reason);

    [LoggerMessage(EventId = 102, Level = LogLevel.Information, Message = "Unloaded LoRA adapter {Name}")]
    private static partial void LogUnloaded(ILogger logger, string name);
}
