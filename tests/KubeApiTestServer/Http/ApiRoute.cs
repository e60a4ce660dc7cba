using HybridServing.KubeApiTestServer.Resources;

namespace HybridServing.KubeApiTestServer.Http;

/// <summary>
/// A resource path taken apart: <c>/api/v1[/watch][/namespaces/{ns}]/{resource}[/{name}[/{subresource}]]</c>
/// or the same under <c>/apis/{group}/{version}</c>.
/// </summary>
internal sealed record ApiRoute(ApiResource Resource, string? Namespace, string? Name, string? Subresource, bool WatchPath)
{
    /// <summary>Returns null for paths that are not resource paths (discovery, health, unknown).</summary>
    /// <exception cref="ApiError">The path has the shape of a resource path but names no registered resource.</exception>
    public static ApiRoute? Parse(string path, ResourceCatalog catalog)
    {
        var segments = path.Trim('/').Split('/', StringSplitOptions.RemoveEmptyEntries).Select(Uri.UnescapeDataString).ToArray();
        string group, version;
        string[] rest;
        if (segments.Length >= 3 && segments[0] == "api")
        {
            (group, version, rest) = ("", segments[1], segments[2..]);
        }
        else if (segments.Length >= 4 && segments[0] == "apis")
        {
            (group, version, rest) = (segments[1], segments[2], segments[3..]);
        }
        else
        {
            return null;
        }

        var watchPath = false;
        if (rest[0] == "watch")
        {
            watchPath = true;
            rest = rest[1..];
        }

        if (rest.Length >= 3 && rest[0] == "namespaces" && catalog.Find(group, version, rest[2]) is { Namespaced: true } namespaced)
        {
            if (rest.Length > 5)
            {
                throw ApiError.UnknownResource();
            }

            return Checked(new ApiRoute(namespaced, rest[1], rest.ElementAtOrDefault(3), rest.ElementAtOrDefault(4), watchPath));
        }

        if (rest.Length == 0 || rest.Length > 3 || catalog.Find(group, version, rest[0]) is not { } resource)
        {
            throw ApiError.UnknownResource();
        }

        var name = rest.ElementAtOrDefault(1);
        if (resource.Namespaced && name is not null)
        {
            // A namespaced object is only addressable inside its namespace.
            throw ApiError.UnknownResource();
        }

        return Checked(new ApiRoute(resource, null, name, rest.ElementAtOrDefault(2), watchPath));
    }

    private static ApiRoute Checked(ApiRoute route)
    {
        if (route.Subresource is not null && !(route.Subresource == "status" && route.Resource.HasStatusSubresource) && !(route.Subresource == "scale" && route.Resource.HasScaleSubresource))
        {
            throw ApiError.UnknownResource();
        }

        return route;
    }

    /// <summary>The namespace the object lives in: "" for cluster-scoped resources.</summary>
    public string ObjectNamespace => Resource.Namespaced ? Namespace ?? "" : "";
}
