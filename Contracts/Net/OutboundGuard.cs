using System.Net;
using System.Net.Sockets;

namespace HybridServing.Contracts.Net;

/// <summary>A connection the <see cref="OutboundGuard"/> refused; HttpClient reports it as the inner exception of
/// its <see cref="System.Net.Http.HttpRequestException"/>.</summary>
public sealed class AddressNotAllowedException(string message) : IOException(message)
{
    /// <summary>The refusal somewhere in <paramref name="e"/>'s inner exceptions, if any.</summary>
    public static AddressNotAllowedException? Find(Exception? e)
    {
        for (; e is not null; e = e.InnerException)
            if (e is AddressNotAllowedException found) return found;
        return null;
    }
}

/// <summary>
/// SSRF guard for adapter sources: an HTTP(S) source must not make a sidecar or the ControlPlane fetch from this
/// machine, the cluster's private networks or a cloud metadata service. The check runs in
/// <see cref="SocketsHttpHandler.ConnectCallback"/> on the addresses the name resolved to at connect time, so a
/// DNS name that resolves (or re-resolves) to a forbidden address and every redirect target are refused too.
/// Refused unless allowed: loopback, link-local (169.254.0.0/16 with 169.254.169.254, fe80::/10), private
/// (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7 with fd00:ec2::254), unspecified, multicast and broadcast.
/// Allowed anyway: the operator's own endpoints (host and port, e.g. the configured Hub), hosts or address ranges
/// listed in <c>{option}:AllowedHosts</c>, or everything with <c>{option}:AllowPrivateNetworks</c>.
/// </summary>
public sealed class OutboundGuard
{
    private readonly HashSet<string> _hosts = new(StringComparer.OrdinalIgnoreCase);
    private readonly List<(IPAddress Network, int Prefix)> _ranges = [];
    private readonly HashSet<(string Host, int Port)> _trusted = [];
    private readonly bool _allowPrivate;
    private readonly string _option;

    /// <param name="allowedHosts">Host names, IP addresses or CIDR ranges (<c>10.0.0.0/8</c>) that may be private.</param>
    /// <param name="trustedEndpoints">Operator-configured endpoints (scheme, host, port) trusted wherever they are.</param>
    /// <param name="option">The configuration section named in refusals, e.g. <c>Sidecar:Sources:Http</c>.</param>
    public OutboundGuard(IEnumerable<string> allowedHosts, bool allowPrivateNetworks, IEnumerable<Uri> trustedEndpoints, string option)
    {
        foreach (var entry in allowedHosts.Select(h => h.Trim()).Where(h => h.Length > 0))
        {
            var slash = entry.IndexOf('/');
            if (slash > 0 && IPAddress.TryParse(entry[..slash], out var network) && int.TryParse(entry[(slash + 1)..], out var prefix))
                _ranges.Add((network, prefix));
            else if (IPAddress.TryParse(entry.Trim('[', ']'), out var single))
                _ranges.Add((single, single.AddressFamily == AddressFamily.InterNetwork ? 32 : 128));
            else _hosts.Add(entry);
        }
        foreach (var url in trustedEndpoints) _trusted.Add((url.IdnHost.Trim('[', ']'), url.Port));
        _allowPrivate = allowPrivateNetworks;
        _option = option;
    }

    /// <summary>An entry of AllowedHosts that cannot be used, or null.</summary>
    public static string? CheckEntry(string entry)
    {
        var slash = entry.IndexOf('/');
        if (slash < 0) return string.IsNullOrWhiteSpace(entry) ? "an empty entry" : null;
        return IPAddress.TryParse(entry[..slash], out var a) && int.TryParse(entry[(slash + 1)..], out var p)
               && p >= 0 && p <= (a.AddressFamily == AddressFamily.InterNetwork ? 32 : 128)
            ? null : $"'{entry}' is neither a host, an IP address nor a CIDR range";
    }

    /// <summary>Why <paramref name="address"/> is not fetched by default, or null when it is a public address.</summary>
    public static string? Restricted(IPAddress address)
    {
        if (address.IsIPv4MappedToIPv6) address = address.MapToIPv4();
        if (IPAddress.IsLoopback(address)) return "loopback";
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            var b = address.GetAddressBytes();
            return b[0] == 0 ? "unspecified" : b[0] == 10 || (b[0] == 172 && b[1] is >= 16 and <= 31) || (b[0] == 192 && b[1] == 168) ? "private"
                : b[0] == 100 && b[1] is >= 64 and <= 127 ? "private (shared address space)"
                : b[0] == 169 && b[1] == 254 ? "link-local (cloud metadata)"
                : b[0] >= 224 ? "multicast or reserved" : null;
        }
        if (address.Equals(IPAddress.IPv6None)) return "unspecified";
        if (address.IsIPv6LinkLocal || address.IsIPv6SiteLocal) return "link-local";
        if (address.IsIPv6Multicast) return "multicast";
        if (address.IsIPv6UniqueLocal) return "private (unique local, e.g. fd00:ec2::254 metadata)";
        return null;
    }

    /// <summary>Whether a connection to <paramref name="host"/>:<paramref name="port"/> at <paramref name="address"/> may be made; else why not.</summary>
    public string? Refusal(string host, int port, IPAddress address)
    {
        if (_allowPrivate || _trusted.Contains((host.Trim('[', ']'), port)) || _hosts.Contains(host)) return null;
        if (Restricted(address) is not { } why) return null;
        var mapped = address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;
        return _ranges.Any(r => InRange(mapped, r.Network, r.Prefix)) ? null : why;
    }

    /// <summary>Sets the handler's connect callback to this guard's.</summary>
    public SocketsHttpHandler Apply(SocketsHttpHandler handler)
    {
        handler.ConnectCallback = ConnectAsync;
        return handler;
    }

    private async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken)
    {
        var endpoint = context.DnsEndPoint;
        var host = endpoint.Host.Trim('[', ']');
        var addresses = IPAddress.TryParse(host, out var literal) ? [literal] : await Dns.GetHostAddressesAsync(host, cancellationToken);
        var allowed = addresses.Where(a => Refusal(host, endpoint.Port, a) is null).ToArray();
        if (allowed.Length == 0)
        {
            var why = string.Join(", ", addresses.Select(a => $"{a} ({Refusal(host, endpoint.Port, a)})"));
            throw new AddressNotAllowedException(
                $"Refusing to connect to {host}:{endpoint.Port}: it resolves to {(why.Length == 0 ? "no address" : why)}, which adapter sources may not reach. " +
                $"Allow it with {_option}:AllowedHosts:N={host} (a host, address or CIDR range) or {_option}:AllowPrivateNetworks=true.");
        }
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(allowed, endpoint.Port, cancellationToken);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static bool InRange(IPAddress address, IPAddress network, int prefix)
    {
        if (address.AddressFamily != network.AddressFamily) return false;
        var a = address.GetAddressBytes();
        var n = network.GetAddressBytes();
        for (var i = 0; i < a.Length && prefix > 0; i++, prefix -= 8)
        {
            var mask = prefix >= 8 ? 0xFF : 0xFF << (8 - prefix) & 0xFF;
            if ((a[i] & mask) != (n[i] & mask)) return false;
        }
        return true;
    }
}
