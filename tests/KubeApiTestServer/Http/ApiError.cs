using System.Text.Json.Nodes;
using HybridServing.KubeApiTestServer.Resources;

namespace HybridServing.KubeApiTestServer.Http;

/// <summary>
/// A request the server refuses, carried to the HTTP layer and written as a Kubernetes
/// <c>Status</c> (kind Status, status Failure, reason, code), which is what KubernetesClient
/// surfaces in <c>HttpOperationException.Response</c> and what informers match on.
/// </summary>
internal sealed class ApiError(int code, string reason, string message) : Exception(message)
{
    public int Code { get; } = code;
    public string Reason { get; } = reason;
    public string? DetailsName { get; init; }
    public ApiResource? DetailsResource { get; init; }
    public IReadOnlyList<(string Field, string Message)> Causes { get; init; } = [];

    public static ApiError NotFound(ApiResource resource, string name) =>
        new(404, "NotFound", $"{resource.QualifiedName} \"{name}\" not found") { DetailsName = name, DetailsResource = resource };

    public static ApiError AlreadyExists(ApiResource resource, string name) =>
        new(409, "AlreadyExists", $"{resource.QualifiedName} \"{name}\" already exists") { DetailsName = name, DetailsResource = resource };

    public static ApiError Conflict(ApiResource resource, string name, string why) =>
        new(409, "Conflict", $"Operation cannot be fulfilled on {resource.QualifiedName} \"{name}\": {why}") { DetailsName = name, DetailsResource = resource };

    public static ApiError StaleResourceVersion(ApiResource resource, string name) =>
        Conflict(resource, name, "the object has been modified; please apply your changes to the latest version and try again");

    public static ApiError Invalid(ApiResource resource, string name, string field, string message) =>
        new(422, "Invalid", $"{resource.Kind} \"{name}\" is invalid: {field}: {message}")
        {
            DetailsName = name,
            DetailsResource = resource,
            Causes = [(field, message)],
        };

    public static ApiError BadRequest(string message) => new(400, "BadRequest", message);

    /// <summary>410 with reason Expired: what the real server answers for a watch or continue token older than its history.</summary>
    public static ApiError Expired(string message) => new(410, "Expired", message);

    public static ApiError UnknownResource() => new(404, "NotFound", "the server could not find the requested resource");

    public static ApiError MethodNotAllowed(string method) => new(405, "MethodNotAllowed", $"the server does not allow this method on the requested resource: {method}");

    public static ApiError UnsupportedMediaType(string contentType, string why) =>
        new(415, "UnsupportedMediaType", $"the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json ({contentType}: {why})");

    /// <summary>A status body for a failure code, used by fault injection and the error path.</summary>
    public static ApiError ForCode(int code, string message) => code switch
    {
        400 => new ApiError(code, "BadRequest", message),
        401 => new ApiError(code, "Unauthorized", message),
        403 => new ApiError(code, "Forbidden", message),
        404 => new ApiError(code, "NotFound", message),
        405 => new ApiError(code, "MethodNotAllowed", message),
        409 => new ApiError(code, "Conflict", message),
        410 => new ApiError(code, "Expired", message),
        422 => new ApiError(code, "Invalid", message),
        429 => new ApiError(code, "TooManyRequests", message),
        500 => new ApiError(code, "InternalError", message),
        503 => new ApiError(code, "ServiceUnavailable", message),
        504 => new ApiError(code, "Timeout", message),
        _ => new ApiError(code, "Unknown", message),
    };

    public JsonObject ToStatus()
    {
        var status = new JsonObject
        {
            ["kind"] = "Status",
            ["apiVersion"] = "v1",
            ["metadata"] = new JsonObject(),
            ["status"] = "Failure",
            ["message"] = Message,
            ["reason"] = Reason,
        };
        if (DetailsName is not null || DetailsResource is not null || Causes.Count > 0)
        {
            var details = new JsonObject();
            if (DetailsName is not null)
            {
                details["name"] = DetailsName;
            }

            if (DetailsResource is not null)
            {
                if (DetailsResource.Group.Length > 0)
                {
                    details["group"] = DetailsResource.Group;
                }

                details["kind"] = DetailsResource.Plural;
            }

            if (Causes.Count > 0)
            {
                details["causes"] = new JsonArray(Causes.Select(c => (JsonNode)new JsonObject
                {
                    ["reason"] = "FieldValueInvalid",
                    ["message"] = c.Message,
                    ["field"] = c.Field,
                }).ToArray());
            }

            status["details"] = details;
        }

        status["code"] = Code;
        return status;
    }
}
