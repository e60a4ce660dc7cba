namespace HybridServing.KubeApiTestServer.Diagnostics;

/// <summary>One request the server answered, for tests that count calls (e.g. mutating calls per second).</summary>
/// <param name="Time">When the answer was decided (the server's TimeProvider); for a watch, when the stream started.</param>
/// <param name="Verb">Kubernetes verb: get, list, watch, create, update, patch, delete, deletecollection, or the HTTP method for other paths.</param>
/// <param name="Method">The HTTP method.</param>
/// <param name="Path">The request path, without the query.</param>
/// <param name="Query">The query string including '?', or empty.</param>
/// <param name="Resource">Plural of the resource, when the path names one.</param>
/// <param name="Subresource">e.g. <c>status</c>.</param>
/// <param name="StatusCode">The HTTP status answered.</param>
/// <param name="Injected">True when a <see cref="Faults.FaultRule"/> produced the answer.</param>
public sealed record RequestRecord(
    DateTimeOffset Time,
    string Verb,
    string Method,
    string Path,
    string Query,
    string? Group,
    string? Resource,
    string? Subresource,
    string? Namespace,
    string? Name,
    int StatusCode,
    bool Injected)
{
    /// <summary>create, update, patch, delete and deletecollection change the cluster.</summary>
    public bool IsMutating => Verb is "create" or "update" or "patch" or "delete" or "deletecollection";
}
