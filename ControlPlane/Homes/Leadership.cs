namespace HybridServing.ControlPlane.Homes;

/// <summary>
/// Whether this replica leads. Only the leader writes to the cluster and drives sidecars; followers
/// keep their caches warm so that a fail-over starts from a full picture.
/// </summary>
internal interface IControlPlaneLeadership
{
    bool IsLeader { get; }

    /// <summary>The identity of the current leader, when known.</summary>
    string? Leader { get; }

    /// <summary>Raised after <see cref="IsLeader"/> changed.</summary>
    event Action? LeadershipChanged;
}

/// <summary>Leadership for a single replica (leader election turned off): always the leader.</summary>
internal sealed class SoleLeadership : IControlPlaneLeadership
{
    public bool IsLeader => true;
    public string? Leader => null;
    public event Action? LeadershipChanged { add { } remove { } }
}
