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
    localparam int KW = $clog2(K > 1 ? K : 2);

    logic [KW-1:0]           k;
    logic [PE*ELEM_BITS-1:0] run_max, next_max;
    logic                    fire;

    // A beat may enter unless the output register holds a result nobody takes.
    assign in_tready = !out_tvalid || out_tready;
    assign fire      = in_tvalid && in_tready;

    always_comb begin
        for (int p = 0; p < PE; p++) begin
            logic [ELEM_BITS-1:0] a, b;
            logic                 b_wins;
            a = run_max[p*ELEM_BITS +: ELEM_BITS];
            b = in_tdata[p*ELEM_BITS +: ELEM_BITS];
            b_wins = SIGNED ? ($signed(b) > $signed(a)) : (b > a);
            next_max[p*ELEM_BITS +: ELEM_BITS] = (k == 0 || b_wins) ? b : a;
        end
    end

    always_ff @(posedge clk) begin
        if (!rst_n) begin
            k <= '0;
            out_tvalid <= 1'b0;
        end else begin
            if (out_tready) out_tvalid <= 1'b0;
            if (fire) begin
                if (k == KW'(K - 1)) begin
                    k <= '0;
                    out_tvalid <= 1'b1;
                end else begin
                    k <= k + 1'b1;
                end
            end
        end
        if (fire) begin
            run_max <= next_max;
            if (k == KW'(K - 1)) out_tdata <= next_max;
        end
    end
endmodule
