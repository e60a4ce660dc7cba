using System.Globalization;
using HybridServing.Contracts.Net;

namespace HybridServing.ControlPlane.Engines;

/// <summary>
/// Engine URLs compared the way a client reaches them, not as written: <c>http://localhost:8000/</c>,
/// <c>http://127.0.0.1:8000</c> and <c>HTTP://[::1]:8000</c> are the same engine. Scheme and host are
/// case-insensitive, the port is explicit (80/443 when left out), every loopback or unspecified host is one
/// host, and a trailing slash on the path does not count.
/// </summary>
internal static class EngineUrls
{
    /// <summary>The canonical form (<c>http://loopback:8000/v1</c>), or null when <paramref name="url"/> is not an absolute http(s) URL.</summary>
    public static string? Canonical(string? url)
    {
        if (string.IsNullOrWhiteSpace(url) || !Uri.TryCreate(url.Trim(), UriKind.Absolute, out var uri)) return null;
        if (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps) return null;
        var host = LocalAddress.IsLocalOnly(uri) ? "loopback" : uri.IdnHost.ToLowerInvariant();
        var path = uri.AbsolutePath.TrimEnd('/');
        return string.Create(CultureInfo.InvariantCulture, $"{uri.Scheme}://{host}:{uri.Port}{path}");
    }

    /// <summary>True when both are absolute http(s) URLs of the same engine.</summary>
    public static bool Same(string? a, string? b) => Canonical(a) is { } x && x == Canonical(b);
}
