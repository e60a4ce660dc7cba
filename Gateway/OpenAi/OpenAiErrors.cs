using System.Globalization;
using System.Text.Json;
using HybridServing.Contracts.OpenAi;

namespace HybridServing.Gateway.OpenAi;

/// <summary>Writes errors in OpenAI's (vLLM's) JSON shape, the only error shape clients of the gateway see.</summary>
internal static class OpenAiErrors
{
    public const string BadRequest = "BadRequestError";
    public const string Authentication = "AuthenticationError";
    public const string PermissionDenied = "PermissionDeniedError";
    public const string NotFound = "NotFoundError";
    public const string RequestTimeout = "RequestTimeoutError";
    public const string RequestTooLarge = "RequestTooLargeError";
    public const string UnsupportedMediaType = "UnsupportedMediaTypeError";
    public const string RateLimit = "RateLimitError";
    public const string BadGateway = "BadGatewayError";
    public const string ServiceUnavailable = "ServiceUnavailableError";

    /// <summary>
    /// vLLM's options, but writing backticks and quotes literally as vLLM does (the default encoder
    /// escapes them); safe because these bodies are always served as application/json.
    /// </summary>
    public static readonly JsonSerializerOptions JsonOptions = new(OpenAiJson.Options)
    {
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static Task WriteAsync(HttpContext context, int status, string type, string message, string? param = null, TimeSpan? retryAfter = null)
    {
        if (context.Response.HasStarted) return Task.CompletedTask;
        context.Response.StatusCode = status;
        if (retryAfter is { } wait)
            context.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        if (status == StatusCodes.Status401Unauthorized)
            context.Response.Headers.WWWAuthenticate = "Bearer";
        context.Response.ContentType = "application/json";
        var body = Serialize(status, type, message, param);
        context.Response.ContentLength = body.Length;
        return context.Response.Body.WriteAsync(body, context.RequestAborted).AsTask();
    }

    public static byte[] Serialize(int status, string type, string message, string? param = null) =>
        JsonSerializer.SerializeToUtf8Bytes(OpenAiErrorResponse.Create(status, type, message, param), JsonOptions);

    public static Task ModelNotFoundAsync(HttpContext context, string model) =>
        WriteAsync(context, StatusCodes.Status404NotFound, NotFound, $"The model `{model}` does not exist.", "model");
}
