// Max pool over the window stream of FINN's depthwise sliding-window generator.
//
// The generator emits, per output pixel and per channel fold, the K window
// positions one beat each (PE channels per beat): (OH, OW, C/PE, K, PE). So every
// K consecutive beats form one output beat: the lane-wise maximum. For binary
// feature maps (bit 1 = +1) the maximum is an OR, and unsigned/signed integers
// compare as such (SIGNED).
module maxpool_stream #(
    parameter int PE        = 1,
    parameter int ELEM_BITS = 1,
    parameter bit SIGNED    = 0,
    parameter int K         = 4
) (
    input  logic                      clk,
    input  logic                      rst_n,
    input  logic [PE*ELEM_BITS-1:0]   in_tdata,
    input  logic                      in_tvalid,
    output logic                      in_tready,
    output logic [PE*ELEM_BITS-1:0]   out_tdata,
    output logic                      out_tvalid,
    input  logic                      out_tready
);
    logic [PE*ELEM_BITS-1:0] run_max, next_max;
    logic                    fire, first, last;

    window_group #(.K(K)) group (
        .clk, .rst_n, .in_tvalid, .in_tready, .out_tvalid, .out_tready, .fire, .first, .last
    );

    always_comb begin
        for (int p = 0; p < PE; p++) begin
            logic [ELEM_BITS-1:0] a, b;
            logic                 b_wins;
            a = run_max[p*ELEM_BITS +: ELEM_BITS];
            b = in_tdata[p*ELEM_BITS +: ELEM_BITS];
            b_wins = SIGNED ? ($signed(b) > $signed(a)) : (b > a);
            next_max[p*ELEM_BITS +: ELEM_BITS] = (first || b_wins) ? b : a;
        end
    end

    always_ff @(posedge clk) begin
        if (fire) begin
            run_max <= next_max;
            if (last) out_tdata <= next_max;
        end
    end
endmodule
