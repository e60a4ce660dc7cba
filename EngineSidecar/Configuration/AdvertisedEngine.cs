using System.Globalization;
using System.Net;
using System.Net.Sockets;
using HybridServing.Contracts.Net;

namespace HybridServing.EngineSidecar.Configuration;

/// <summary>
/// The engine URL the sidecar reports (and the gateway forwards to), as opposed to the URL the sidecar
/// itself calls. In a pod the engine is at 127.0.0.1 for the sidecar only: everyone else must use the
/// pod's address. Rule: <c>Sidecar:AdvertisedEngineUrl</c> when set; else, when the engine URL's host is
/// a loopback or unspecified address and the pod IP is known (<c>Sidecar:PodIp</c>, or <c>POD_IP</c>,
/// from the downward API's <c>status.podIP</c>), the pod IP with the engine's port; else the engine URL.
/// </summary>
internal static class AdvertisedEngine
{
    public static Uri Url(SidecarOptions options, Uri engineUrl)
    {
        if (!string.IsNullOrWhiteSpace(options.AdvertisedEngineUrl)) return new Uri(options.AdvertisedEngineUrl);
        if (!LocalAddress.IsLocalOnly(engineUrl) || !IPAddress.TryParse(options.PodIp, out var pod)) return engineUrl;
        var host = pod.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{pod}]" : pod.ToString();
        return new UriBuilder(engineUrl) { Host = host }.Uri;
    }

    public static IEnumerable<string> Validate(SidecarOptions options)
    {
        if (!string.IsNullOrWhiteSpace(options.AdvertisedEngineUrl)
            && (!Uri.TryCreate(options.AdvertisedEngineUrl, UriKind.Absolute, out var u) || (u.Scheme != Uri.UriSchemeHttp && u.Scheme != Uri.UriSchemeHttps)))
            yield return $"Sidecar:AdvertisedEngineUrl '{options.AdvertisedEngineUrl}' is not an absolute http(s) URL.";
        if (!string.IsNullOrWhiteSpace(options.PodIp) && !IPAddress.TryParse(options.PodIp, out _))
            yield return string.Create(CultureInfo.InvariantCulture, $"Sidecar:PodIp (or POD_IP) '{options.PodIp}' is not an IP address; set it from the downward API's status.podIP.");
    }
}
