using System.Net;

namespace HybridServing.Contracts.Net;

/// <summary>Addresses only the same network namespace (the same pod) can reach.</summary>
public static class LocalAddress
{
    /// <summary>True for <c>localhost</c>, loopback and unspecified (<c>0.0.0.0</c>, <c>::</c>) hosts.</summary>
    public static bool IsLocalOnly(Uri url) =>
        url.IsLoopback
        || (IPAddress.TryParse(url.Host.Trim('[', ']'), out var ip) && (IPAddress.IsLoopback(ip) || ip.Equals(IPAddress.Any) || ip.Equals(IPAddress.IPv6Any)));
}
